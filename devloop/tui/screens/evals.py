"""4 Evals: eval runs (newest first) and the per-case results of the selected run."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import DataTable, Label, Static
from textual.worker import get_current_worker

from devloop.tui.formatting import clip, percent, short_stamp, short_usd
from devloop.tui.ladder import list_runs, run_cases, run_status
from devloop.tui.messages import StagesChanged
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.widgets.line_table import Column, LineTable

RUN_COLUMNS: list[Column] = [("When", 11), ("Eval set", 16), ("Model", 18),
                             ("Pass", 5, "right"), ("Thr", 4, "right"), ("Cost", 8, "right"),
                             ("Result", 6)]
CASE_COLUMNS: list[Column] = [("Case", 18), ("Pass", 4), ("Cost", 8, "right"), ("Cached", 6),
                              ("Reason", 60)]
NO_RUNS = ("No eval runs yet. On the Prompts screen (3) press e on an eval set, or run "
           "`devloop eval evalsets/NAME.yaml`.")


def run_cells(run: dict[str, Any]) -> list[Any]:
    status = run_status(run)
    result = Text(status, style={"pass": "green", "fail": "red", "error": "red"}.get(status, ""))
    threshold = run.get("threshold")
    return [short_stamp(run.get("ts")), clip(str(run.get("name")), 16),
            clip(str(run.get("model") or "-"), 18), percent(run.get("pass_rate")),
            f"{threshold:g}" if isinstance(threshold, int | float) else "-",
            short_usd(run.get("cost_usd")), result]


def case_cells(case: dict[str, Any]) -> list[Any]:
    ok = case.get("pass")
    mark = Text("✓", style="green") if ok else Text("✗", style="red") if ok is not None else "-"
    return [clip(str(case.get("id")), 18), mark, short_usd(case.get("cost_usd")),
            "yes" if case.get("cached") else "", clip(str(case.get("reason") or ""), 60)]


class EvalsScreen(DevloopScreen):
    MODE = "evals"
    AUTO_FOCUS = "#runs-table"
    RELOAD_ON_CALL = False
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, dict[str, Any]] = {}

    def compose_body(self) -> ComposeResult:
        yield Static(NO_RUNS, id="evals-empty")
        with Container(id="evals-body"):
            yield Label("Runs", classes="pane-title")
            yield LineTable(RUN_COLUMNS, id="runs-table")
            yield Label("Cases", classes="pane-title", id="cases-title")
            yield LineTable(CASE_COLUMNS, id="cases-table")

    def on_mount(self) -> None:
        self.query_one("#evals-empty").display = False

    def reload(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, group="evals", exit_on_error=False)
    def load_runs(self) -> None:
        runs = list_runs(self.devloop.reader)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_runs, runs)

    def show_runs(self, runs: list[dict[str, Any]] | None) -> None:
        self.query_one("#evals-empty").display = not runs
        self.query_one("#evals-body").display = bool(runs)
        table = self.query_one("#runs-table", LineTable)
        table.clear()
        self.runs = {}
        for i, run in enumerate(runs or []):
            key = str(run.get("id") if run.get("id") is not None else f"row{i}")
            self.runs[key] = run
            table.add_line(run_cells(run), key=key)
        if not runs:
            self.query_one("#cases-table", LineTable).clear()
        self.data_shown()

    @on(DataTable.RowHighlighted, "#runs-table")
    def run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        run = self.runs.get(event.row_key.value or "")
        if run is not None:
            self.query_one("#cases-title", Label).update(
                f"Cases of {run.get('name')} on {run.get('model') or '?'}")
            self.load_cases(run.get("id"))

    @work(thread=True, exclusive=True, group="evals-cases", exit_on_error=False)
    def load_cases(self, run_id: Any) -> None:
        cases = run_cases(self.devloop.reader, run_id)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_cases, cases)

    def show_cases(self, cases: list[dict[str, Any]]) -> None:
        table = self.query_one("#cases-table", LineTable)
        table.clear()
        for i, case in enumerate(cases):
            table.add_line(case_cells(case), key=f"{i}:{case.get('id')}")
        self.data_shown()

    def on_stages_changed(self, message: StagesChanged) -> None:
        self.reload_soon()
