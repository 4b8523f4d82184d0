"""Priority classes: interactive never waits; background yields to interactive calls in flight
on the tier and never runs more than the tier's cap at once; frontier is not gated."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from devloop.config import Profile
from devloop.gateway.priority import PriorityGate


async def _hold(gate: PriorityGate, tier: str, priority: str, started: list[str], name: str,
                release: asyncio.Event) -> None:
    async with gate.slot(tier, priority):
        started.append(name)
        await release.wait()


def test_background_yields_and_is_capped() -> None:
    async def main() -> None:
        gate = PriorityGate({"shared": 2})
        started: list[str] = []
        inter, bg = asyncio.Event(), asyncio.Event()
        i1 = asyncio.create_task(_hold(gate, "shared", "interactive", started, "i1", inter))
        await asyncio.sleep(0)
        bgs = [asyncio.create_task(_hold(gate, "shared", "background", started, f"b{n}", bg))
               for n in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert started == ["i1"]  # background waits while an interactive call is in flight
        assert gate.stats("shared")["background_waiting"] == 3
        inter.set()
        await i1
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(started) == ["b0", "b1", "i1"]  # the cap: two at once
        # a new interactive call does not wait for the background ones
        i2 = asyncio.create_task(_hold(gate, "shared", "interactive", started, "i2",
                                       asyncio.Event()))
        for _ in range(3):
            await asyncio.sleep(0)
        assert "i2" in started
        i2.cancel()
        bg.set()
        await asyncio.gather(*bgs)
        assert sorted(started) == ["b0", "b1", "b2", "i1", "i2"]
        assert gate.stats("shared")["background"] == 0

    asyncio.run(main())


def test_frontier_is_not_gated() -> None:
    async def main() -> None:
        gate = PriorityGate({"shared": 1})
        started: list[str] = []
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(gate, "frontier", "background", started, f"f{n}",
                                           release)) for n in range(4)]
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(started) == 4
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_the_cap_comes_from_the_profile() -> None:
    prof = Profile.model_validate({
        "name": "p", "production_model": "openai/gpt-4o-mini",
        "tiers": {"shared": {"backend": "openai", "model": "m", "base_url": "http://x/v1"}},
        "routes": [{"tier": "shared"}], "priority": {"background_concurrency": {"shared": 3}}})
    assert PriorityGate.from_profile(prof).stats("shared")["background_cap"] == 3
    with pytest.raises(ValueError, match="priority"):
        Profile.model_validate({
            "name": "p", "production_model": "m",
            "tiers": {"shared": {"backend": "openai", "model": "m", "base_url": "http://x/v1"}},
            "routes": [{"tier": "shared"}], "priority": {"background": 3}})


def test_a_bad_priority_header_is_a_400(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import start_server, write_profile

    prof = write_profile(tmp_path / "p.yaml", """
name: p
production_model: anthropic/claude-sonnet-4-6
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: embedded}]
""")
    server = start_server(prof, tmp_path / "home")
    try:
        r = httpx.post(server.base_url + "/v1/chat/completions",
                       headers={"X-Devloop-Priority": "urgent"},
                       json={"model": "embedded", "max_tokens": 2,
                             "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "X-Devloop-Priority"
        r = httpx.post(server.base_url + "/v1/chat/completions",
                       headers={"X-Devloop-Priority": "background"}, timeout=120,
                       json={"model": "embedded", "max_tokens": 2,
                             "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
    finally:
        server.stop()


def test_an_interactive_stream_holds_the_tier_until_it_ends() -> None:
    async def main() -> None:
        gate = PriorityGate({"local": 1})
        assert gate.enter("local") and not gate.enter("frontier")
        started: list[str] = []
        release = asyncio.Event()
        task = asyncio.create_task(_hold(gate, "local", "background", started, "b", release))
        for _ in range(3):
            await asyncio.sleep(0)
        assert started == []
        gate.leave("local")
        for _ in range(3):
            await asyncio.sleep(0)
        assert started == ["b"]
        release.set()
        await task

    asyncio.run(main())
