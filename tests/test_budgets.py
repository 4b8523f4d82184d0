"""Budgets with hard stops and rate limits, against a counting stub upstream on loopback.

The frontier tier is litellm `openai/<name>` with api_base at the stub, priced by the profile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from devloop.config import Profile
from devloop.gateway.admission import (
    RESERVATION_TTL_S,
    BudgetExceeded,
    Budgets,
    scope_applies,
    worst_case_prompt_tokens,
)
from devloop.store.budgets import period_bounds
from devloop.store.writer import DbWriter
from devloop.tokens import count_tokens
from devloop.types import ChatRequest
from tests.helpers import RunningServer, start_server, write_profile
from tests.routing.stub_upstream import StubUpstream

PRICE_PER_TOKEN = 0.001  # the profile's $1000 per million tokens, in and out
MAX_TOKENS = 20


def profile_text(stub: StubUpstream, extra: str) -> str:
    return f"""
name: budgets
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  frontier: {{backend: litellm, model: openai/stub-model, api_base: "{stub.base_url}"}}
routes:
  - {{tier: embedded}}
fallbacks: []
cache: {{enabled: false}}
prices:
  openai/stub-model: {{input: 1000.0, output: 1000.0}}
{extra}
"""


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as s:
        yield s


def serve(tmp_path: Path, stub: StubUpstream, extra: str) -> RunningServer:
    path = write_profile(tmp_path / "budgets.yaml", profile_text(stub, extra))
    return start_server(path, tmp_path / "home")


def message(i: int) -> dict[str, object]:
    return {"model": "frontier", "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": f"Say hello to caller {i:02d}."}]}


def worst_case_usd() -> float:
    req = ChatRequest.model_validate(message(0))
    return (worst_case_prompt_tokens(req) + MAX_TOKENS) * PRICE_PER_TOKEN


async def fire(base_url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        return await asyncio.gather(*(client.post("/v1/chat/completions", json=message(i))
                                      for i in range(n)))


@pytest.mark.slow
def test_budget_is_a_hard_stop_under_concurrency(tmp_path: Path, stub: StubUpstream) -> None:
    budget = round(worst_case_usd() * 10.5, 6)  # fits about 10 calls at their worst case
    stub.state.delay = 2.0  # every request is in flight at once
    server = serve(tmp_path, stub, f"budgets:\n  - {{scope: tier:frontier, usd: {budget}, "
                                   "period: day}")
    try:
        responses = asyncio.run(fire(server.base_url, 50))
    finally:
        server.stop()
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 50, {r.status_code for r in responses}
    # about 10: a settled call frees the unused part of its worst case for a late arrival
    assert 5 <= len(ok) <= 12, len(ok)
    for r in refused:
        assert r.json()["error"]["code"] == "budget_exceeded"
        assert int(r.headers["retry-after"]) >= 1
    # Nothing beyond what was admitted reached the paid upstream.
    assert stub.state.chat_requests == len(ok)
    with sqlite3.connect(server.db_path) as conn:
        spent, rows = conn.execute("SELECT total(cost_usd), count(*) FROM calls "
                                   "WHERE tier = 'frontier' AND status = 200").fetchone()
        held = conn.execute("SELECT count(*) FROM reservations").fetchone()[0]
    assert rows == len(ok)
    assert 0 < spent <= budget
    assert held == 0  # every reservation was settled by its ledger row


@pytest.mark.slow
def test_budget_counts_what_was_spent_before(tmp_path: Path, stub: StubUpstream) -> None:
    budget = round(worst_case_usd() * 2.5, 6)
    server = serve(tmp_path, stub, f"budgets:\n  - {{scope: global, usd: {budget}, period: day}}")
    try:
        codes = [r.status_code for r in asyncio.run(fire(server.base_url, 1))]
        codes += [r.status_code for r in asyncio.run(fire(server.base_url, 1))]
        codes += [r.status_code for r in asyncio.run(fire(server.base_url, 3))]
        # a free tier is never stopped by a budget on paid spend
        local = httpx.post(server.base_url + "/v1/chat/completions", timeout=60, json={
            "model": "embedded", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    finally:
        server.stop()
    assert codes[:2] == [200, 200]
    assert sorted(codes[2:]).count(200) <= 1 and 429 in codes[2:]
    assert local.status_code == 200
    assert stub.state.chat_requests == codes.count(200)


@pytest.mark.slow
def test_rate_limits(tmp_path: Path, stub: StubUpstream) -> None:
    stub.state.delay = 3.0  # the burst's first two are still in flight when the rest arrive
    server = serve(tmp_path, stub, """rate_limits:
  - {scope: "tier:embedded", rpm: 3}
  - {scope: "tier:frontier", max_concurrent: 2}
""")
    try:
        hi = {"model": "embedded", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
        per_minute = [httpx.post(server.base_url + "/v1/chat/completions", json=hi, timeout=60)
                      for _ in range(4)]
        burst = asyncio.run(fire(server.base_url, 5))
    finally:
        server.stop()
    assert [r.status_code for r in per_minute] == [200, 200, 200, 429]
    err = per_minute[3]
    assert err.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(err.headers["retry-after"]) >= 1
    codes = sorted(r.status_code for r in burst)
    assert codes == [200, 200, 429, 429, 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded"
               for r in burst if r.status_code == 429)
    assert stub.max_in_flight <= 2 and stub.state.chat_requests == 2


# -- the pieces, in process --------------------------------------------------------------------
def budgets_for(tmp_path: Path, budgets: list[dict[str, object]],
                rate_limits: list[dict[str, object]] | None = None) -> Budgets:
    profile = Profile.model_validate({
        "name": "b", "production_model": "anthropic/claude-sonnet-4-5",
        "tiers": {"frontier": {"backend": "litellm", "model": "openai/x"}},
        "routes": [{"tier": "frontier"}],
        "budgets": budgets, "rate_limits": rate_limits or []})
    return Budgets(profile, DbWriter(tmp_path / "devloop.db"))


async def test_reservations_stop_at_the_budget(tmp_path: Path) -> None:
    b = budgets_for(tmp_path, [{"scope": "tier:frontier", "usd": 1.0}])
    try:
        first = await b.reserve("frontier", None, None, 0.4)
        await b.reserve("frontier", None, None, 0.4)
        with pytest.raises(BudgetExceeded) as err:
            await b.reserve("frontier", None, None, 0.4)
        start, end = period_bounds("day")
        assert err.value.code == "budget_exceeded"
        assert 1 <= err.value.retry_after <= end - start
        assert await b.reserve("local", None, None, 5.0) is None  # no budget on that tier
        # settling the first at its actual cost frees the rest of its reservation
        settle = Budgets.settle_job(first)
        assert settle is not None

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO calls (ts, request_id, tier, cost_usd) VALUES (?, 'a', "
                         "'frontier', 0.1)", (time.time(),))
            settle(conn)

        await b.writer.run(job)
        assert await b.reserve("frontier", None, None, 0.4) is not None
    finally:
        b.writer.close()


async def test_stale_reservations_stop_holding_budget(tmp_path: Path) -> None:
    """A process killed mid-call never settles its reservation; it must not hold for ever."""
    b = budgets_for(tmp_path, [{"scope": "global", "usd": 1.0, "period": "month"}])
    try:
        stale = time.time() - RESERVATION_TTL_S - 60
        await b.writer.run(lambda c: c.execute(
            "INSERT INTO reservations VALUES ('old', ?, 'global', 0.9, 0)", (stale,)))
        assert await b.reserve("frontier", None, None, 0.5) is not None
        await b.writer.run(lambda c: c.execute(
            "INSERT INTO reservations VALUES ('new', ?, 'global', 0.4, 0)", (time.time(),)))
        with pytest.raises(BudgetExceeded):
            await b.reserve("frontier", None, None, 0.5)  # 0.5 + 0.4 held + 0.5 > 1.0
    finally:
        b.writer.close()


def test_period_bounds() -> None:
    t = datetime(2026, 3, 18, 15, 30, tzinfo=UTC).timestamp()  # a Wednesday
    day = period_bounds("day", t)
    week = period_bounds("week", t)
    month = period_bounds("month", t)
    assert day == (datetime(2026, 3, 18, tzinfo=UTC).timestamp(),
                   datetime(2026, 3, 19, tzinfo=UTC).timestamp())
    assert week[0] == datetime(2026, 3, 16, tzinfo=UTC).timestamp()
    assert month == (datetime(2026, 3, 1, tzinfo=UTC).timestamp(),
                     datetime(2026, 4, 1, tzinfo=UTC).timestamp())


def test_scopes_and_worst_case() -> None:
    assert scope_applies("global", "local", None, None)
    assert scope_applies("tier:frontier", "frontier", None, None)
    assert not scope_applies("tier:frontier", "shared", None, None)
    assert scope_applies("feature:eval", "local", "eval", None)
    assert scope_applies("key:ana", "local", None, "ana")
    req = ChatRequest.model_validate(message(0))
    assert worst_case_prompt_tokens(req) > count_tokens(req.prompt_text())


def test_rate_limit_bookkeeping(tmp_path: Path) -> None:
    b = budgets_for(tmp_path, [], [{"scope": "global", "rpm": 2},
                                   {"scope": "key:ana", "max_concurrent": 1}])
    try:
        b.acquire_rate(["global", "key:ana"])
        with pytest.raises(BudgetExceeded) as err:
            b.acquire_rate(["global", "key:ana"])  # ana already has one in flight
        assert err.value.code == "rate_limit_exceeded"
        b.release_rate(["global", "key:ana"])
        b.acquire_rate(["global", "key:ana"])
        b.release_rate(["global", "key:ana"])
        with pytest.raises(BudgetExceeded) as err:
            b.acquire_rate(["global"])  # the third this minute
        assert 1 <= err.value.retry_after <= 61
    finally:
        b.writer.close()


@pytest.mark.slow
def test_budget_refuses_a_model_with_no_known_price(tmp_path: Path, stub: StubUpstream) -> None:
    """A hard stop cannot hold for a price nobody knows: refuse, say how to fix, send nothing."""
    text = profile_text(stub, "budgets:\n  - {scope: tier:frontier, usd: 1.00, period: day}\n")
    text = text.replace("model: openai/stub-model,", "model: openai/unpriced-model,")
    server = start_server(write_profile(tmp_path / "unpriced.yaml", text), tmp_path / "home")
    try:
        resp = httpx.post(server.base_url + "/v1/chat/completions", json=message(0), timeout=60)
        assert resp.status_code == 429
        err = resp.json()["error"]
        assert err["code"] == "budget_exceeded" and "prices" in err["message"]
        assert int(resp.headers["retry-after"]) > 0
        assert stub.state.chat_requests == 0
    finally:
        server.stop()
