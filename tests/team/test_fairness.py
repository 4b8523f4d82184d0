"""Must-show 2: while key A keeps 50 requests in flight, key B's p95 latency stays within 2x
of what it is alone.

The upstream is scripts/fake_upstream.py (4 requests at a time, 0.25 s each, like a GPU
at its batch limit) behind a team devloop capped at 4 requests in flight. Timing is the
point here, so a fake upstream is the right part; scripts/bench_team.py runs the same
measurement with more samples and a no-queue comparison.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import RunningServer, start_server, write_profile
from tests.team.conftest import add_key, bearer, rows

pytestmark = pytest.mark.slow
DELAY, CAPACITY, BURST, SAMPLES = 0.25, 4, 50, 20


@pytest.fixture(scope="module")
def fair_team(fake_upstream_factory: Any, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[RunningServer, str, dict[str, str]]]:
    upstream = fake_upstream_factory(DELAY, CAPACITY)
    profile = f"""
name: team-fair
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "{upstream}/v1", model: fake-gpu-model}}
routes:
  - {{tier: shared}}
cache: {{enabled: false}}
"""
    home = tmp_path_factory.mktemp("fair-home")
    keys = {name: add_key(home, name) for name in ("heavy", "light")}
    server = start_server(write_profile(home / "fair.yaml", profile), home,
                          env={"DEVLOOP_TEAM_MAX_IN_FLIGHT": str(CAPACITY)},
                          args=("--team", "--metrics-public"))
    yield server, upstream, keys
    server.stop()


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


async def timed_calls(client: httpx.AsyncClient, key: str, n: int) -> list[float]:
    body = {"model": "shared", "max_tokens": 4,
            "messages": [{"role": "user", "content": "Complete this line."}]}
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        resp = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        latencies.append(time.perf_counter() - start)
        assert resp.status_code == 200, resp.text
    return latencies


async def test_one_keys_burst_does_not_starve_another(
        fair_team: tuple[RunningServer, str, dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    server, upstream, keys = fair_team
    limits = httpx.Limits(max_connections=BURST + 10, max_keepalive_connections=BURST + 10)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as client:
        await timed_calls(client, keys["light"], 2)  # warm connections
        alone = await timed_calls(client, keys["light"], SAMPLES)

        stop = asyncio.Event()
        heavy_done = 0

        async def heavy_worker() -> None:
            nonlocal heavy_done
            while not stop.is_set():
                await timed_calls(client, keys["heavy"], 1)
                heavy_done += 1

        workers = [asyncio.create_task(heavy_worker()) for _ in range(BURST)]
        await asyncio.sleep(4 * DELAY)  # the burst fills the slots and the queue
        loaded = await timed_calls(client, keys["light"], SAMPLES)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 120)

    with capsys.disabled():
        print(f"\nkey B p95 alone {p95(alone) * 1000:.0f} ms, while key A keeps {BURST} in "
              f"flight {p95(loaded) * 1000:.0f} ms (x{p95(loaded) / p95(alone):.2f}); "
              f"A completed {heavy_done} calls meanwhile")
    assert p95(loaded) <= 2 * p95(alone)
    assert heavy_done > 2 * SAMPLES  # A was busy all along, not starved either
    stats = httpx.get(upstream + "/stats").json()
    assert stats["max_active"] <= CAPACITY  # the cap held: the queue was in devloop
    queued = rows(server.db_path, "SELECT count(*), max(queue_position), max(queue_wait_ms) "
                                  "FROM calls WHERE key_id = 'heavy' AND queue_position > 0")[0]
    assert queued[0] > BURST and queued[1] > 10 and queued[2] > 1000 * DELAY
    light = rows(server.db_path, "SELECT count(*) FROM calls WHERE key_id = 'light'")[0][0]
    assert light == 2 * SAMPLES + 2


async def test_clients_that_give_up_while_queued_free_their_place(
        fair_team: tuple[RunningServer, str, dict[str, str]]) -> None:
    server, upstream, keys = fair_team
    served_before = httpx.get(upstream + "/stats").json()["served"]
    body = {"model": "shared", "messages": [{"role": "user", "content": "Hi."}]}

    async def impatient(client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json=body, headers=bearer(keys["heavy"]),
                              timeout=httpx.Timeout(60, read=0.2))

    async with httpx.AsyncClient(base_url=server.base_url,
                                 limits=httpx.Limits(max_connections=30)) as client:
        await asyncio.gather(*(impatient(client) for _ in range(20)), return_exceptions=True)
        await asyncio.sleep(2 * DELAY + 0.5)  # the few already upstream finish there
        # Nobody is left holding a slot or a place: a fresh call goes straight through.
        assert (await timed_calls(client, keys["light"], 1))[0] < 2 * DELAY + 0.5
    metrics = httpx.get(server.base_url + "/metrics").text
    assert "devloop_upstream_slots_in_use 0" in metrics
    assert 'devloop_queue_depth{key="heavy"} 0' in metrics
    abandoned = [line for line in metrics.splitlines()
                 if line.startswith('devloop_queue_abandoned_total{key="heavy"}')]
    assert abandoned and float(abandoned[0].split()[-1]) >= 10
    served = httpx.get(upstream + "/stats").json()["served"] - served_before
    assert served < 10  # only those admitted before their client left reached the upstream
