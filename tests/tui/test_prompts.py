"""The Prompts screen follows the files in ./evalsets: an edit updates its row, a new file
appears, a broken file says why, and the eval key asks before spending."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from devloop.tui.app import DevloopApp
from devloop.tui.screens.confirm import ConfirmScreen
from devloop.tui.screens.prompts import PromptsScreen
from devloop.tui.widgets.line_table import LineTable


async def wait_for(pilot: Pilot[object], check: Callable[[], bool], timeout: float,
                   what: str) -> None:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout}s")
        await pilot.pause(0.05)


def row_text(table: LineTable, key: str) -> list[str]:
    return table.cells(key)


async def open_prompts(pilot: Pilot[object]) -> tuple[PromptsScreen, LineTable]:
    await pilot.press("3")
    screen = pilot.app.screen
    assert isinstance(screen, PromptsScreen)
    table = screen.query_one("#prompts-table", LineTable)
    await wait_for(pilot, lambda: table.row_count == 3, 5, "eval sets listed")
    return screen, table


async def test_editing_an_evalset_updates_its_row(
    make_app: Callable[..., DevloopApp], seeded_home: Path, workdir: Path
) -> None:
    path = workdir / "evalsets" / "commit-message.yaml"
    key = str(path.resolve())
    app = make_app(seeded_home, live=True)  # live: the file watcher runs
    async with app.run_test(size=(100, 30)) as pilot:
        _, table = await open_prompts(pilot)
        before = row_text(table, key)
        assert before[:2] == ["commit-message", "3"]
        assert before[2:] == ["✓ pass", "! warn", "✓ pass", "✓ pass", "✓ pass"]

        # A new case and a reworded system prompt: a new prompt hash with no results yet.
        text = path.read_text()
        text = text.replace("one-line Conventional Commits", "short Conventional Commits")
        text += ('  - id: added\n    vars: {diff: "+x = 1"}\n'
                 '    assert:\n      - {type: contains, value: x}\n')
        path.write_text(text)
        await wait_for(pilot, lambda: row_text(table, key)[1] == "4", 5, "row updated")
        after = row_text(table, key)
        # Stored results belong to the old prompt: stale, not silently carried over.
        assert after[2:] == ["~ stale", "~ stale", "~ stale", "~ stale", "· not run"]


async def test_new_and_broken_files(
    make_app: Callable[..., DevloopApp], seeded_home: Path, workdir: Path
) -> None:
    app = make_app(seeded_home, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        _, table = await open_prompts(pilot)
        (workdir / "evalsets" / "extra.yaml").write_text(
            "name: extra\nprompt:\n  system: hi\ncases:\n  - vars: {}\n")
        await wait_for(pilot, lambda: table.row_count == 4, 5, "new file listed")
        summarize = str((workdir / "evalsets" / "summarize.yaml").resolve())
        (workdir / "evalsets" / "summarize.yaml").write_text("name: [unclosed\n")
        await wait_for(pilot, lambda: row_text(table, summarize)[2] == "✗ invalid", 5,
                       "broken file flagged")
        (workdir / "evalsets" / "extra.yaml").unlink()
        await wait_for(pilot, lambda: table.row_count == 3, 5, "removed file dropped")


async def test_eval_key_shows_estimate_and_cancel_runs_nothing(
    make_app: Callable[..., DevloopApp], seeded_home: Path, workdir: Path
) -> None:
    app = make_app(seeded_home)
    async with app.run_test(size=(100, 30)) as pilot:
        screen, table = await open_prompts(pilot)
        key = str((workdir / "evalsets" / "commit-message.yaml").resolve())
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "confirm")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "3 cases on anthropic/claude-sonnet-4-5" in body
        assert "Worst-case cost: $0.0" in body  # priced from the bundled price map
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen
        assert screen.running == {} and not app.jobs


async def test_check_key_runs_devloop_check_in_a_worker(
    make_app: Callable[..., DevloopApp], seeded_home: Path, workdir: Path
) -> None:
    """`c` on a broken file is refused with the reason; on a good one the row shows running
    while `devloop check` runs in a subprocess (stopped here when the app quits)."""
    app = make_app(seeded_home)
    async with app.run_test(size=(100, 30)) as pilot:
        screen, table = await open_prompts(pilot)
        broken = str((workdir / "evalsets" / "broken.yaml").resolve())
        table.move_cursor(row=table.get_row_index(broken))
        await pilot.press("c")
        assert screen.running == {}
        summarize = str((workdir / "evalsets" / "summarize.yaml").resolve())
        table.move_cursor(row=table.get_row_index(summarize))
        await pilot.press("c")
        assert screen.running == {summarize: "check"}
        assert row_text(table, summarize)[2] == "… running"
        await wait_for(pilot, lambda: bool(app.jobs), 5, "subprocess started")
        await app.action_quit()
        await asyncio.sleep(0)
