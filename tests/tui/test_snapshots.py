"""Every screen at 80x24 and 120x40, from a seeded database with a fixed clock.

The app runs without the endpoint, timers or file watcher, so nothing live reaches the
picture. Regenerate after an intended change with
`.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from devloop.tui.app import DevloopApp

SCREENS = ["1", "2", "3", "4", "5", "6"]
SIZES = [(80, 24), (120, 40)]
NAMES = {"1": "dashboard", "2": "calls", "3": "prompts", "4": "evals", "5": "spend",
         "6": "backends"}


async def settle(pilot: Pilot[object]) -> None:
    """Wait until every data worker has delivered (workers may start further workers)."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def open_screen(key: str) -> Callable[[Pilot[object]], object]:
    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", SCREENS, ids=lambda k: NAMES[k])
def test_screen(snap_compare: Callable[..., bool], make_app: Callable[..., DevloopApp],
                seeded_home: Path, key: str, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(seeded_home), run_before=open_screen(key), terminal_size=size)


def test_calls_filtered(snap_compare: Callable[..., bool], make_app: Callable[..., DevloopApp],
                        seeded_home: Path) -> None:
    """`/` then a field filter: only frontier calls, the detail pane on the first."""

    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("slash", *"tier:frontier", "enter")
        await settle(pilot)

    assert snap_compare(make_app(seeded_home), run_before=run_before, terminal_size=(80, 24))


def test_empty_home(snap_compare: Callable[..., bool], make_app: Callable[..., DevloopApp],
                    tmp_path: Path) -> None:
    """A fresh machine: no calls, nothing run yet."""
    assert snap_compare(make_app(tmp_path / "fresh"), run_before=open_screen("1"),
                        terminal_size=(80, 24))
