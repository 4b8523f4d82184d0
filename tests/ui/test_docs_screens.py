"""Must-show 1: docs/screens/*.svg are the snapshot tests' own pictures (so a change that
alters a screen fails the snapshot test until the docs are regenerated with it)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "tui" / "__snapshots__" / "test_snapshots"
SCREENS = ["dashboard", "calls", "prompts", "evals", "spend", "backends"]


@pytest.mark.parametrize("size", ["80x24", "120x40"])
@pytest.mark.parametrize("screen", SCREENS)
def test_docs_screenshot_is_the_snapshot(screen: str, size: str) -> None:
    doc = ROOT / "docs" / "screens" / f"{screen}-{size}.svg"
    snapshot = SNAPSHOTS / f"test_screen[{screen}-{size}].svg"
    assert doc.read_text() == snapshot.read_text(), (
        f"regenerate: cp '{snapshot}' '{doc}' after reviewing it")


def test_readme_dashboard_is_the_120x40_snapshot() -> None:
    assert (ROOT / "docs" / "dashboard.svg").read_text() == \
        (SNAPSHOTS / "test_screen[dashboard-120x40].svg").read_text()
