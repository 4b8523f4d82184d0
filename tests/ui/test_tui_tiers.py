"""Issue 20, Why 2 (TUI): the Tiers panel never shows a down tier as idle or ok."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from devloop.tui.app import DevloopApp
from devloop.tui.widgets.stats import TierHealthList
from tests.helpers import free_port
from tests.tui.conftest import make_app, snapshot_profile, utc, workdir  # noqa: F401

PROFILE = """
name: tiers
production_model: gpt-4o-mini
tiers:
  local: {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9", fallback: embedded}
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: local}]
"""


def _states(app: DevloopApp) -> dict[str, str]:
    text = str(app.screen.query_one(TierHealthList).render())
    return {line.split()[1]: line.split()[2] for line in text.splitlines() if line.strip()}


async def test_tiers_panel_is_true_from_the_start(
        make_app: Callable[..., DevloopApp], tmp_path: Path) -> None:  # noqa: F811
    profile = tmp_path / "tiers.yaml"
    profile.write_text(PROFILE)
    app = make_app(tmp_path / "home", profile, port=free_port(), serve=True, live=True,
                   clock=time.time)
    seen: list[dict[str, str]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = _states(app)
            seen.append(states)
            if states.get("local") == "down" and states.get("embedded") == "ok":
                break
            await asyncio.sleep(0.1)
        await pilot.press("q")
    assert seen[-1] == {"local": "down", "embedded": "ok"}, seen[-1]
    # Never claimed to be fine (idle/ok) or off while being probed.
    assert all(s.get("local") in ("wait", "down") for s in seen), seen
