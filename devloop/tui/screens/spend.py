"""5 Spend: saved versus spent per day (a plot), and both by tier and by feature."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from devloop.periods import zone_label
from devloop.store.reports import SpendGroup, SpendView
from devloop.tui.formatting import short_usd, usd
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.widgets.line_table import Column, LineTable

WINDOWS = (7, 14, 30, 90)
# Two of these side by side fit 80 columns (34 cells each, gaps included).
GROUP_COLUMNS: list[Column] = [("Key", 8), ("Calls", 5, "right"), ("Spent", 7, "right"),
                               ("Saved", 8, "right")]


def group_cells(g: SpendGroup) -> list[Any]:
    return [g.key, f"{g.calls:,}", short_usd(g.cost_usd),
            Text(short_usd(g.saved_usd), style="green" if (g.saved_usd or 0) > 0 else "")]


class SpendScreen(DevloopScreen):
    MODE = "spend"
    BINDINGS = [Binding("w", "window", "Window"), Binding("r", "refresh", "Refresh")]

    def __init__(self) -> None:
        super().__init__()
        self.days = 14
        self._warmed = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="spend-totals")
        yield PlotextPlot(id="spend-plot")
        with Horizontal(id="spend-groups"):
            with Vertical():
                yield Label("By tier", classes="pane-title")
                yield LineTable(GROUP_COLUMNS, id="by-tier")
            with Vertical():
                yield Label("By feature", classes="pane-title")
                yield LineTable(GROUP_COLUMNS, id="by-feature")

    def reload(self) -> None:
        self.load_spend(self.days)

    @work(thread=True, exclusive=True, group="spend", exit_on_error=False)
    def load_spend(self, days: int) -> None:
        view = self.devloop.reader.spend(self.devloop.clock(), days)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_spend, view, days)
            if not self._warmed:
                self._warmed = True
                self.app.call_from_thread(self.warm)

    @work(thread=True, exclusive=True, group="spend-warm", exit_on_error=False)
    def warm(self) -> None:
        """The longest window's past days, cached in the background after the first view."""
        self.devloop.reader.warm_days(self.devloop.clock(), max(WINDOWS))

    def show_spend(self, view: SpendView, days: int) -> None:
        text = Text(f"Last {days} days: ", style="bold")
        text.append(f"saved {usd(view.total_saved)}", style="bold green")
        text.append(f" · spent {usd(view.total_spent)}")
        zone = zone_label(self.devloop.clock(), self.devloop.reader.tz)
        text.append(f"  (w: window, {zone} days)", style="dim")
        self.query_one("#spend-totals", Static).update(text)
        self.draw_plot(view)
        for table_id, groups in (("#by-tier", view.by_tier), ("#by-feature", view.by_feature)):
            table = self.query_one(table_id, LineTable)
            table.clear()
            for g in groups:
                table.add_line(group_cells(g), key=g.key)
        self.data_shown()

    def draw_plot(self, view: SpendView) -> None:
        widget = self.query_one(PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        xs = list(range(1, len(view.days) + 1))
        plt.plot(xs, view.saved, label="saved", marker="braille", color="green")
        plt.plot(xs, view.spent, label="spent", marker="braille", color="red")
        step = max(1, len(xs) // 7)  # about seven date labels fit at 80 columns
        ticks = xs[::step]
        plt.xticks(ticks, [view.days[i - 1] for i in ticks])
        plt.ylabel("USD/day")
        plt.title("")
        widget.refresh()

    def action_refresh(self) -> None:
        self.devloop.reader.forget_days()
        self._warmed = False
        self.reload()

    def action_window(self) -> None:
        self.days = WINDOWS[(WINDOWS.index(self.days) + 1) % len(WINDOWS)]
        self.reload()
