"""2 Calls: the ledger, a page at a time, with a filter (`/`) and a detail pane."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from devloop.store.reports import COUNT_CAP, PAGE_SIZE, CallFilter, Row
from devloop.tui.formatting import clock, millis, short_usd, tokens
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.widgets.call_detail import CallDetail
from devloop.tui.widgets.line_table import Column, LineTable

# The detail pane is below the table, so at 120 columns every column fits; where they do
# not (80), Model and Cache give way: the detail pane right below shows both.
COLUMNS: list[Column] = [("Time", 8), ("Tier", 8), ("Feature", 12), ("Model", 14),
                         ("Cache", 6), ("Saved", 8, "right"), ("Cost", 8, "right"),
                         ("Tok", 6, "right"), ("ms", 6, "right"), ("St", 3)]
NARROW_HIDDEN = ("Model", "Cache")
TABLE_CHROME = 3  # the vertical scrollbar and the cell's padding
FILTER_DEBOUNCE_S = 0.25


def call_cells(row: Row) -> list[Any]:
    ok = row["status"] == 200
    saved = row["saved_usd"]
    return [
        clock(row["ts"]),
        Text(row["tier"] or "-", style="bold" if ok else "bold red"),
        row["feature"] or "-",
        row["model"] or "-",
        row["cache"] or "-",
        Text(short_usd(saved), style="green" if (saved or 0) > 0 else ""),
        short_usd(row["cost_usd"]),
        tokens((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0)),
        millis(row["latency_ms"]),
        Text(str(row["status"]), style="" if ok else "red"),
    ]


class CallsScreen(DevloopScreen):
    MODE = "calls"
    AUTO_FOCUS = "#calls-table"
    RELOAD_ON_CALL = False  # on_call_logged decides
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("n", "page(1)", "Next page"),
        Binding("p", "page(-1)", "Prev page"),
        Binding("d", "toggle_detail", "Detail"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.page = 0
        self.total = 0
        self.filter = CallFilter()
        self._filter_timer: Timer | None = None
        self._keep_id: int | None = None  # -1: a new page starts at its first row
        self._detail_id: int | None = None  # the call the detail pane shows

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="calls-bar"):
            yield Input(placeholder="/ filter: tier:frontier feature:commit* text",
                        id="calls-filter")
            yield Static("", id="calls-status")
        with Container(id="calls-body"):
            yield LineTable(COLUMNS, id="calls-table")
            with VerticalScroll(id="call-detail-pane"):
                yield CallDetail(id="call-detail")

    def on_mount(self) -> None:
        self.query_one(CallDetail).show(None)
        self.fit_columns()

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Every column where the terminal has room for them, else all but NARROW_HIDDEN."""
        table = self.query_one("#calls-table", LineTable)
        room = self.app.size.width - TABLE_CHROME
        table.hide(() if table.width_of() <= room else NARROW_HIDDEN)

    # -- data ---------------------------------------------------------------------------------
    def reload(self) -> None:
        keep = self._keep_id if self._keep_id is not None else self._highlighted_id()
        self._keep_id = None
        self.load_page(self.filter, self.page, keep)

    @work(thread=True, exclusive=True, group="calls-page", exit_on_error=False)
    def load_page(self, flt: CallFilter, page: int, keep: int | None) -> None:
        reader = self.devloop.reader
        total = reader.count_calls(flt)
        last_page = max((min(total, COUNT_CAP) - 1) // PAGE_SIZE, 0)
        page = min(page, last_page)
        rows = reader.calls_page(flt, page)
        # The row the cursor will be on: its detail comes with the page (one repaint, not two).
        ids = [row["id"] for row in rows]
        focus = keep if keep in ids else (ids[0] if ids else None)
        detail = reader.call(focus) if focus is not None else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_page, rows, page, total, focus, detail)

    def show_page(self, rows: list[Row], page: int, total: int, focus: int | None,
                  detail: dict[str, Any] | None) -> None:
        self.page, self.total = page, total
        table = self.query_one("#calls-table", LineTable)
        self._detail_id = focus
        table.clear()
        for row in rows:
            table.add_line(call_cells(row), key=str(row["id"]))
        if focus is not None and focus != (rows[0]["id"] if rows else None):
            table.move_cursor(row=table.get_row_index(str(focus)))
        self.query_one(CallDetail).show(detail)
        self.show_status()
        self.data_shown()

    def show_status(self) -> None:
        start = self.page * PAGE_SIZE
        shown = self.query_one("#calls-table", DataTable).row_count
        if self.total == 0:
            text = "no calls match" if self.filter else "no calls yet"
        else:
            more = "+" if self.total > COUNT_CAP else ""
            total = min(self.total, COUNT_CAP)
            pages = (total - 1) // PAGE_SIZE + 1
            text = (f"{start + 1:,}-{start + shown:,} of {total:,}{more}"
                    f" · page {self.page + 1:,}/{pages:,}{more}")
        self.query_one("#calls-status", Static).update(text)

    def _highlighted_id(self) -> int | None:
        key = self.query_one("#calls-table", LineTable).highlighted_key
        return int(key) if key else None

    @on(DataTable.RowHighlighted, "#calls-table")
    def highlight(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and int(event.row_key.value) != self._detail_id:
            self._detail_id = int(event.row_key.value)
            self.load_detail(self._detail_id)

    @work(thread=True, exclusive=True, group="calls-detail", exit_on_error=False)
    def load_detail(self, call_id: int) -> None:
        row = self.devloop.reader.call(call_id)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_detail, row)

    def show_detail(self, row: dict[str, Any] | None) -> None:
        self.query_one(CallDetail).show(row)
        self.data_shown()

    def action_toggle_detail(self) -> None:
        """Hide the detail pane (the table takes its rows) or show it again."""
        pane = self.query_one("#call-detail-pane")
        pane.display = not pane.display

    # -- filter and pages ---------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#calls-filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#calls-filter", Input)
        if box.value:
            box.value = ""
        self.query_one("#calls-table", DataTable).focus()

    @on(Input.Changed, "#calls-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE_S, self.apply_filter)

    @on(Input.Submitted, "#calls-filter")
    def filter_submitted(self) -> None:
        self.apply_filter()
        self.query_one("#calls-table", DataTable).focus()

    def apply_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        flt = CallFilter.parse(self.query_one("#calls-filter", Input).value)
        if flt != self.filter:
            self.filter, self.page = flt, 0
            self.reload()

    def action_page(self, step: int) -> None:
        last_page = max((min(self.total, COUNT_CAP) - 1) // PAGE_SIZE, 0)
        page = min(max(self.page + step, 0), last_page)
        if page != self.page:
            self.page = page
            self._keep_id = -1  # a new page starts at its first row
            self.reload()

    def on_call_logged(self, message: Any) -> None:
        if self.page == 0:  # only the first page shows new calls
            self.reload_soon()
        else:
            self.stale = True

    def show_request(self, request_id: str) -> None:
        """Open one call (from the dashboard): filter on its request id."""
        box = self.query_one("#calls-filter", Input)
        box.value = request_id
        self.apply_filter()
