"""3 Prompts: every eval set in ./evalsets and its promotion ladder, live as files change.

A saved file updates its row at once (parse, prompt hash, stored results); the automatic
checker then re-runs the check stages and each result updates the row as it lands.
`c` runs the checks and `e` runs `devloop eval` (after confirming its cost estimate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from devloop.paths import display_path
from devloop.tui.formatting import clip, short_stamp, usd
from devloop.tui.jobs import CliJob
from devloop.tui.ladder import (
    CHECK_STAGES,
    NOT_RUN,
    STAGE_TITLES,
    STAGES,
    EvalEstimate,
    EvalsetInfo,
    estimate_eval,
    list_evalset_files,
    load_ladder,
)
from devloop.tui.messages import CheckProgress, EvalsetChanged, StagesChanged
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.screens.confirm import ConfirmScreen
from devloop.tui.widgets.line_table import Column, LineTable

STATUS_STYLE = {
    "pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"),
    "error": ("✗", "red"), "skipped": ("-", "dim"), NOT_RUN: ("·", "dim"),
    "stale": ("~", "yellow"), "running": ("…", "cyan"), "done": ("✓", "green"),
}
COLUMNS: list[Column] = [("Eval set", 16), ("#", 2, "right"),
                         *((STAGE_TITLES[s], 11 if s == "cache_order" else 9) for s in STAGES)]
WATCH_DEBOUNCE_S = 0.15


def stage_cell(status: str) -> Text:
    glyph, style = STATUS_STYLE.get(status, ("?", ""))
    return Text(f"{glyph} {status}", style=style)


def running_stages(job: str | None) -> tuple[str, ...]:
    return {"check": CHECK_STAGES, "eval": ("eval",)}.get(job or "", ())


def ladder_cells(info: EvalsetInfo, job: str | None = None) -> list[Any]:
    name = Text(clip(info.name, 16), style="bold red" if info.error else "bold")
    if info.error:
        return [name, "-", Text("✗ invalid", style="red"), *["" for _ in STAGES[1:]]]
    busy = running_stages(job)
    return [name, str(info.cases),
            *(stage_cell("running" if s in busy else info.stages[s].status) for s in STAGES)]


def detail_table(info: EvalsetInfo, job: str | None) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row("File", display_path(info.path))
    if info.error:
        grid.add_row("Invalid", Text(info.error, style="red"))
        return grid
    grid.add_row("Prompt", f"{(info.prompt_hash or '')[:12]} · {info.cases} cases · threshold "
                           f"{info.threshold:g} · {info.production_model or 'profile model'}")
    busy = running_stages(job)
    for stage in STAGES:
        st = info.stages[stage]
        line = stage_cell("running" if stage in busy else st.status)
        if st.summary:
            line.append(f"  {st.summary}")
        if st.ts:
            line.append(f"  {short_stamp(st.ts)}", style="dim")
        grid.add_row(STAGE_TITLES[stage], line)
    return grid


class PromptsScreen(DevloopScreen):
    MODE = "prompts"
    AUTO_FOCUS = "#prompts-table"
    RELOAD_ON_CALL = False
    BINDINGS = [
        Binding("c", "check", "Run checks"),
        Binding("e", "eval", "Run eval"),
        Binding("r", "refresh", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, EvalsetInfo] = {}  # resolved path -> its ladder
        self.running: dict[str, str] = {}  # resolved path -> "check" | "eval"
        self._changed: set[Path] = set()

    def compose_body(self) -> ComposeResult:
        yield LineTable(COLUMNS, id="prompts-table")
        yield Static("", id="prompts-empty")
        with VerticalScroll(id="prompt-detail-pane"):
            yield Static("", id="prompt-detail")

    def on_mount(self) -> None:
        self.query_one("#prompts-empty").display = False

    # -- loading ------------------------------------------------------------------------------
    def reload(self) -> None:
        self.load_all()

    @work(thread=True, exclusive=True, group="prompts", exit_on_error=False)
    def load_all(self) -> None:
        reader, folder = self.devloop.reader, self.devloop.evalsets_dir
        infos = [load_ladder(reader, path) for path in list_evalset_files(folder)]
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_all, infos)

    def show_all(self, infos: list[EvalsetInfo]) -> None:
        table = self.query_one("#prompts-table", LineTable)
        keep = self.selected_key()
        table.clear()
        self.rows = {}
        for info in infos:
            key = _key(info.path)
            self.rows[key] = info
            table.add_line(ladder_cells(info, self.running.get(key)), key=key)
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        empty = self.query_one("#prompts-empty", Static)
        empty.display = not infos
        empty.update(f"No eval sets in {self.devloop.evalsets_dir}/ yet: add NAME.yaml there "
                     "(see the README) and it appears here.")
        self.show_detail()
        self.data_shown()

    @work(thread=True, group="prompts-one", exit_on_error=False)
    def load_one(self, path: Path) -> None:
        info = load_ladder(self.devloop.reader, path) if path.exists() else None
        self.app.call_from_thread(self.show_one, path, info)

    def show_one(self, path: Path, info: EvalsetInfo | None) -> None:
        table = self.query_one("#prompts-table", LineTable)
        key = _key(path)
        if info is None:
            if key in self.rows:
                del self.rows[key]
                table.remove_line(key)
            self.show_detail()
            return
        if key not in self.rows:  # a new file: reload all to keep the list sorted
            self.reload()
            return
        self.rows[key] = info
        table.update_line(key, ladder_cells(info, self.running.get(key)))
        self.show_detail()
        self.data_shown()

    # -- selection and detail -----------------------------------------------------------------
    def selected_key(self) -> str | None:
        return self.query_one("#prompts-table", LineTable).highlighted_key

    @on(DataTable.RowHighlighted, "#prompts-table")
    def highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        key = self.selected_key() or ""
        info = self.rows.get(key)
        pane = self.query_one("#prompt-detail", Static)
        pane.update(detail_table(info, self.running.get(key)) if info else "")

    # -- file changes and check progress ---------------------------------------------------------
    def on_evalset_changed(self, message: EvalsetChanged) -> None:
        if not self._changed:
            self.set_timer(WATCH_DEBOUNCE_S, self._apply_changes)
        self._changed.add(message.path)

    def _apply_changes(self) -> None:
        changed, self._changed = self._changed, set()
        for path in sorted(changed):
            self.load_one(path)

    def on_check_progress(self, message: CheckProgress) -> None:
        key = _key(message.path)
        if message.kind == "started":
            self.running[key] = "check"
        elif message.kind in ("done", "invalid", "removed") and self.running.get(key) == "check":
            del self.running[key]
        if message.kind in ("started", "stage", "done", "invalid", "stale", "removed"):
            self.load_one(message.path)

    def on_stages_changed(self, message: StagesChanged) -> None:
        if message.path is not None:
            self.load_one(message.path)
        else:
            self.reload()

    # -- jobs -----------------------------------------------------------------------------------
    def _selected_info(self) -> EvalsetInfo | None:
        key = self.selected_key() or ""
        info = self.rows.get(key)
        if info is None:
            self.notify("No eval set selected", severity="warning")
        elif info.error:
            self.notify(f"{info.path.name} is invalid: {info.error}", severity="error")
        elif key in self.running:
            self.notify(f"{info.name}: {self.running[key]} is already running")
        else:
            return info
        return None

    def action_check(self) -> None:
        info = self._selected_info()
        if info is None:
            return
        if self.devloop.auto_checker.trigger(info.path):  # in process, progress on the row
            self.notify(f"checking {info.name}…")
        else:
            self.run_job(info.path, "check", ["check", str(info.path), "--json"])

    def action_eval(self) -> None:
        info = self._selected_info()
        if info is not None:
            self.estimate(info.path)

    @work(thread=True, exclusive=True, group="prompts-estimate", exit_on_error=False)
    def estimate(self, path: Path) -> None:
        try:
            est = estimate_eval(path, self.devloop.profile, self.devloop.settings.db_path)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            self.app.call_from_thread(self.notify, f"cannot estimate {path.name}: {exc}",
                                      severity="error")
            return
        self.app.call_from_thread(self.confirm_eval, path, est)

    def confirm_eval(self, path: Path, est: EvalEstimate) -> None:
        cached = f", {est.cached} answered from earlier results (free)" if est.cached else ""
        body = (f"{est.cases} cases on {est.model}{cached}.\n"
                f"Worst-case cost: {usd(est.cost_usd, 'unknown (no price for this model)')}.")
        args = ["eval", str(path)]
        if est.cost_usd is not None:  # the eval refuses to start above what was agreed here
            args += ["--max-cost", f"{est.cost_usd * 1.01 + 1e-6:.6f}"]

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_job(path, "eval", args)

        self.app.push_screen(ConfirmScreen(f"Run the eval of {est.name}?", body), answered)

    def run_job(self, path: Path, kind: str, args: list[str]) -> None:
        self.running[_key(path)] = kind
        self._redraw_row(path)
        self.run_cli(path, kind, args)

    @work(thread=True, group="prompts-jobs", exit_on_error=False)
    def run_cli(self, path: Path, kind: str, args: list[str]) -> None:
        job = CliJob(args, self.devloop.settings)
        self.devloop.jobs.add(job)
        try:
            result = job.run()
        finally:
            self.devloop.jobs.discard(job)
        self.app.call_from_thread(self.job_done, path, kind, result.ok, result.summary)

    def job_done(self, path: Path, kind: str, ok: bool, summary: str) -> None:
        self.running.pop(_key(path), None)
        self.notify(f"{kind} {path.name}: {summary}", severity="information" if ok else "error",
                    timeout=8)
        self.devloop.broadcast(lambda: StagesChanged(path))  # this screen and Evals reload

    def _redraw_row(self, path: Path) -> None:
        info = self.rows.get(_key(path))
        if info is not None:
            self.show_one(path, info)


def _key(path: Path) -> str:
    return str(path.resolve())
