"""Issue 20, Why 5: palette commands for the actions, copy that says how, failing assertions
and errors that stay in the Prompts detail pane."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from devloop.tui.app import DevloopApp
from devloop.tui.ladder import Stage
from devloop.tui.screens.prompts import detail_table
from tests.tui.conftest import make_app, seeded_home, snapshot_profile, utc, workdir  # noqa: F401
from tests.tui.test_snapshots import settle


async def test_palette_offers_the_actions(make_app: Callable[..., DevloopApp],  # noqa: F811
                                          seeded_home: Path) -> None:  # noqa: F811
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Run check", "Run eval", "Copy Continue config", "Open a call",
                "Switch profile"} <= titles
        copy = next(c for c in app.get_system_commands(app.screen)
                    if c.title == "Copy Continue config")
        copy.callback()
        await settle(pilot)
        await pilot.pause(0.2)
        assert app.screen.MODE == "backends"  # type: ignore[attr-defined]
        assert "apiBase" in (app.clipboard or "") or "devloop" in (app.clipboard or "")
        notes = [n.message for n in app._notifications]
        assert any("OSC 52" in n for n in notes), notes  # it says how it copied


async def test_prompts_detail_shows_failing_cases_and_keeps_errors(
        make_app: Callable[..., DevloopApp], seeded_home: Path) -> None:  # noqa: F811
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        key, info = next((k, i) for k, i in screen.rows.items()  # type: ignore[attr-defined]
                         if i.name == "commit-message")
        info.stages["draft"] = Stage("warn", "33% pass", None, {"cases": [
            {"id": "off-by-one", "passed": False, "reason": "regex ^fix did not match"},
            {"id": "docs", "passed": None, "error": "tier local: timed out"},
            {"id": "new-flag", "passed": True, "reason": ""}]})
        screen.job_done(info.path, "eval", False, "error: no API key: set ANTHROPIC_API_KEY")  # type: ignore[attr-defined]
        await settle(pilot)
        assert screen.errors[key].endswith("set ANTHROPIC_API_KEY")  # type: ignore[attr-defined]
        pane = _text(detail_table(info, None, screen.errors.get(key)))  # type: ignore[attr-defined]
        assert "off-by-one: regex ^fix did not match" in pane
        assert "docs: tier local: timed out" in pane and "new-flag" not in pane
        assert "no API key: set ANTHROPIC_API_KEY" in pane  # still there after the toast


def _text(renderable: object) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_prompts_row_shows_per_case_progress_of_a_running_check(
        make_app: Callable[..., DevloopApp], seeded_home: Path, workdir: Path) -> None:  # noqa: F811

    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        path = (workdir / "evalsets" / "commit-message.yaml").resolve()
        for kind, text in [("started", ""), ("case", "off-by-one pass"), ("case", "new-flag fail")]:
            app._on_check_event(path, kind, text)
        await settle(pilot)
        await pilot.pause(0.2)
        cells = screen.query_one("#prompts-table").cells(str(path))  # type: ignore[attr-defined]
        assert cells[2] == "… 2/3 cases"
        info = screen.rows[str(path)]  # type: ignore[attr-defined]
        pane = _text(detail_table(info, "check", None, screen.cases_done[str(path)]))  # type: ignore[attr-defined]
        assert "2 of 3 cases (last: new-flag fail)" in pane
