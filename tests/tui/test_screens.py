"""Navigating and using the screens against a seeded ledger."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static

from devloop.store.reports import PAGE_SIZE
from devloop.tui.app import DevloopApp
from devloop.tui.screens.calls import CallsScreen
from devloop.tui.widgets.line_table import LineTable

MODES = ["dashboard", "calls", "prompts", "evals", "spend", "backends"]


async def settle(pilot: Pilot[object]) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def wait_for(pilot: Pilot[object], check: Callable[[], bool], what: str,
                   timeout: float = 5) -> None:
    start = time.perf_counter()
    while not check():
        assert time.perf_counter() - start < timeout, f"{what}: not after {timeout}s"
        await pilot.pause(0.05)


def plain(widget: Static) -> str:
    """A Static's content as text (rich tables included), for asserting on what it shows."""
    console = Console(width=160, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def status(app: DevloopApp) -> str:
    return str(app.screen.query_one("#calls-status", Static).render())


async def test_number_keys_and_palette_reach_every_screen(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(80, 24)) as pilot:
        for i, mode in enumerate(MODES, start=1):
            await pilot.press(str(i))
            assert app.current_mode == mode
        # Each screen registered once (it receives one copy of each broadcast message).
        assert sorted(s.MODE for s in app._screens) == sorted(MODES)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Dashboard (1)", "Calls (2)", "Backends (6)"):
            assert title in titles
        await settle(pilot)


async def test_calls_filter_pages_and_detail(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CallsScreen)
        table = screen.query_one("#calls-table", LineTable)
        assert table.row_count == PAGE_SIZE
        assert status(app) == "1-100 of 300 · page 1/3"

        await pilot.press("n")
        await settle(pilot)
        assert status(app) == "101-200 of 300 · page 2/3"
        await pilot.press("n", "n")
        await settle(pilot)
        assert status(app) == "201-300 of 300 · page 3/3"  # stops at the last page
        await pilot.press("p")
        await settle(pilot)
        assert status(app).startswith("101-200")

        # `/` focuses the filter; typing narrows the ledger (debounced), Enter returns.
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"tier:frontier", "enter")
        await settle(pilot)
        assert app.focused is table
        assert status(app).endswith("page 1/1")
        assert {cells[1] for cells in map(table.cells, table.values)} == {"frontier"}

        # The detail pane explains the highlighted call.
        detail = plain(screen.query_one("#call-detail", Static))
        assert "Route" in detail and "-> frontier" in detail and "anthropic/claude" in detail

        await pilot.press("escape")  # clears the filter
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert status(app) == "1-100 of 300 · page 1/3"


async def test_dashboard_row_opens_the_call(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        live = app.screen.query_one("#live-calls", LineTable)
        newest = live.highlighted_key
        assert newest is not None
        live.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "calls"
        assert app.screen.query_one("#calls-filter", Input).value == newest
        assert status(app) == "1-1 of 1 · page 1/1"
        assert newest in plain(app.screen.query_one("#call-detail", Static))


async def test_spend_window_and_backends_provider(
    make_app: Callable[..., DevloopApp], seeded_home: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        totals = app.screen.query_one("#spend-totals", Static)
        assert str(totals.render()).startswith("Last 14 days: saved $")
        await pilot.press("w")
        await settle(pilot)
        assert str(totals.render()).startswith("Last 30 days")
        tiers = app.screen.query_one("#by-tier", LineTable)
        assert set(tiers.values) == {
            "local", "embedded", "shared", "frontier"}

        await pilot.press("6")
        await settle(pilot)
        screen = app.screen
        assert "provider: openai" in screen.config_text  # type: ignore[attr-defined]
        assert "apiBase: http://127.0.0.1:8790/v1" in screen.config_text  # type: ignore[attr-defined]
        await pilot.press("o")
        assert "provider: ollama" in screen.config_text  # type: ignore[attr-defined]
        await pilot.press("s")
        await settle(pilot)
        saved = seeded_home / "continue-ollama.yaml"
        assert saved.read_text() == screen.config_text  # type: ignore[attr-defined]
        rows = screen.query_one("#tiers-table", LineTable)
        assert rows.row_count == 4
        assert rows.cells("embedded")[2] == "○ off"  # no endpoint hosted in this test


async def test_empty_database_and_missing_folder(
    make_app: Callable[..., DevloopApp], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "fresh", evalsets_dir=tmp_path / "nowhere")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "No calls yet" in str(app.screen.query_one("#live-empty", Static).render())
        await pilot.press("3")
        await settle(pilot)
        assert "No eval sets" in str(app.screen.query_one("#prompts-empty", Static).render())
        await pilot.press("4")
        await settle(pilot)
        assert app.screen.query_one("#evals-empty").display
        await pilot.press("2")
        await settle(pilot)
        assert status(app) == "no calls yet"
