"""/metrics through prometheus_client: each gateway has its own registry (tests and the TUI
run several in one process), the exposition parses as Prometheus text, and the names and
labels dashboards use are kept. No model answers here: ledger rows are metered directly."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devloop.config import Profile, Settings
from devloop.gateway import Gateway, Prepared
from devloop.types import ChatRequest, QueueStats, RequestContext, RouteDecision, Usage

PROFILE = {
    "name": "metrics", "production_model": "anthropic/claude-sonnet-4-5",
    "tiers": {"shared": {"backend": "openai", "model": "stub", "base_url": "http://127.0.0.1:9/v1"},
              "local": {"backend": "ollama", "model": "qwen2.5-coder:1.5b",
                        "base_url": "http://127.0.0.1:9"}},
    "routes": [{"tier": "shared"}],
}


def samples(gw: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = gw.metrics.render().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def meter_one(gw: Gateway, user: str, cost: float, counterfactual: float,
                    queue: QueueStats | None = None) -> None:
    req = ChatRequest.model_validate({"model": "auto", "messages": [
        {"role": "user", "content": "hello"}]})
    ctx = RequestContext(uuid.uuid4().hex, "chat", "openai", user=user, key_id=user, queue=queue)
    prep = Prepared(req, ctx, RouteDecision("shared", "stub", "test"), None, "miss",
                    time.perf_counter())
    rec = gw.meter.record(prep, "shared", "openai", "stub", "test", "miss", Usage(10, 2), cost,
                          counterfactual)
    await gw.meter.write(rec)


@pytest.fixture
async def two(tmp_path: Path):  # type: ignore[no-untyped-def]
    profile = Profile.model_validate(PROFILE)
    a = Gateway(Settings(home=tmp_path / "a", ollama_probe_timeout=0.25), profile)
    b = Gateway(Settings(home=tmp_path / "b"), profile)
    yield a, b
    await a.close()
    await b.close()


async def test_each_gateway_counts_only_its_own_calls(two: tuple[Gateway, Gateway]) -> None:
    a, b = two
    await meter_one(a, "ana", 0.0, 0.002)
    await meter_one(a, "ana", 0.0, 0.002)
    await meter_one(b, "bo", 0.0, 0.002)
    sa, sb = samples(a), samples(b)
    key = ("devloop_requests_total",
           frozenset({"tier": "shared", "key": "ana", "cache": "miss", "status": "200"}.items()))
    assert sa[key] == 2
    assert key not in sb
    assert sb[("devloop_requests_total", frozenset(
        {"tier": "shared", "key": "bo", "cache": "miss", "status": "200"}.items()))] == 1
    tokens = ("devloop_tokens_total",
              frozenset({"tier": "shared", "key": "ana", "direction": "prompt"}.items()))
    assert sa[tokens] == 20
    assert sa[("devloop_request_duration_seconds_count",
               frozenset({"tier": "shared"}.items()))] == 2
    assert sa[("devloop_in_flight", frozenset())] == 0


async def test_a_negative_saving_is_metered_not_refused(two: tuple[Gateway, Gateway]) -> None:
    """A call on a pricier model than the production one saves a negative amount."""
    a, _ = two
    await meter_one(a, "ana", 0.01, 0.004, QueueStats(position=2, wait_ms=12.5))
    saved = samples(a)[("devloop_saved_usd_total",
                        frozenset({"tier": "shared", "key": "ana"}.items()))]
    assert saved == pytest.approx(-0.006)
    row = a.read_conn.execute("SELECT queue_position, queue_wait_ms FROM calls").fetchone()
    assert tuple(row) == (2, 12.5)  # the team queue's stats reach the ledger row


async def test_settings_reach_the_ollama_probe(two: tuple[Gateway, Gateway]) -> None:
    a, b = two
    assert a.router.backends["local"].probe_timeout == 0.25  # type: ignore[attr-defined]
    assert b.router.backends["local"].probe_timeout == Settings().ollama_probe_timeout  # type: ignore[attr-defined]
    health = await a.router.check("local")  # nothing listens on port 9
    assert not health.ok


def test_histogram_buckets_are_cumulative_and_upper_bounds_inclusive() -> None:
    """The tallied histograms expose what prometheus_client's would: ``le`` counts every
    observation at or below the bound, ``+Inf`` and ``_count`` all of them."""
    from devloop.gateway.metrics import Metrics

    m = Metrics()
    for seconds in (0.005, 0.007, 0.3, 500.0):
        m.observe("devloop_request_duration_seconds", seconds, tier="local")
    m.inc("devloop_requests_total", tier="local", key=None, cache="miss", status="200")
    m.inc("devloop_requests_total", 2, status="200", cache="miss", key=None, tier="local")
    got = {(s.name, s.labels.get("le")): s.value
           for family in text_string_to_metric_families(m.render().decode())
           for s in family.samples if s.labels.get("tier") == "local"}
    assert got[("devloop_request_duration_seconds_bucket", "0.005")] == 1
    assert got[("devloop_request_duration_seconds_bucket", "0.01")] == 2
    assert got[("devloop_request_duration_seconds_bucket", "0.25")] == 2
    assert got[("devloop_request_duration_seconds_bucket", "0.5")] == 3
    assert got[("devloop_request_duration_seconds_bucket", "120.0")] == 3
    assert got[("devloop_request_duration_seconds_bucket", "+Inf")] == 4
    assert got[("devloop_request_duration_seconds_count", None)] == 4
    assert got[("devloop_request_duration_seconds_sum", None)] == pytest.approx(500.312)
    assert got[("devloop_requests_total", None)] == 3  # labels given in any order


def test_a_wrong_label_name_is_refused() -> None:
    from devloop.gateway.metrics import Metrics

    with pytest.raises(ValueError, match="devloop_queue_rejected_total"):
        Metrics().inc("devloop_queue_rejected_total", key="k", reasn="queue_full")
