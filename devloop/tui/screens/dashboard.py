"""1 Dashboard: live calls as they happen, savings, response- and prompt-cache hit rates, local
share, the alerts that fire, budgets and tier health."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static
from textual.worker import get_current_worker

from devloop.alerts import evaluate
from devloop.periods import zone_label
from devloop.store.calls import CallRecord
from devloop.store.reports import RECENT_LIMIT, BudgetUse, Summary, TierLatency
from devloop.tui.formatting import calls, clip, clock, millis, percent, short_usd, tokens, usd
from devloop.tui.health import tier_states
from devloop.tui.messages import AlertsChecked, CallLogged
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.widgets.line_table import Column, LineTable
from devloop.tui.widgets.stats import AlertsBanner, BudgetGauges, StatCard, TierHealthList

LIVE_COLUMNS: list[Column] = [("Time", 8), ("Tier", 8), ("Model", 14), ("Saved", 8, "right"),
                              ("Tok", 5, "right"), ("ms", 6, "right"), ("Feature", 12),
                              ("Cache", 6)]
CACHE_STYLE = {"hit": "green", "miss": "", "bypass": "yellow", "off": "dim"}
# The rules compare the last 24 hours with the week before (~100 ms on 100,000 rows, in a
# thread of its own): re-evaluated at most this often, as calls arrive or on a timer.
ALERTS_EVERY_S = 60.0


@dataclass(slots=True)
class LiveRow:
    """One call on the live list, from a ledger row or from a CallRecord just written."""

    key: str
    ts: float
    tier: str | None
    model: str | None
    saved_usd: float | None
    total_tokens: int
    latency_ms: float
    feature: str | None
    cache: str
    status: int

    @classmethod
    def from_record(cls, rec: CallRecord) -> LiveRow:
        return cls(rec.request_id, rec.ts or time.time(), rec.tier, rec.model, rec.saved_usd,
                   rec.prompt_tokens + rec.completion_tokens, rec.latency_ms, rec.feature,
                   rec.cache, rec.status)

    @classmethod
    def from_row(cls, row: Any) -> LiveRow:
        return cls(row["request_id"] or str(row["id"]), row["ts"], row["tier"], row["model"],
                   row["saved_usd"], (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0),
                   row["latency_ms"] or 0.0, row["feature"], row["cache"] or "", row["status"])

    def cells(self) -> list[Any]:
        failed = self.status != 200
        return [
            clock(self.ts),
            Text(self.tier or "-", style="red" if failed else "bold"),
            clip(self.model, 14),
            Text(short_usd(self.saved_usd), style="green" if (self.saved_usd or 0) > 0 else ""),
            tokens(self.total_tokens),
            millis(self.latency_ms),
            clip(self.feature, 12) or "-",
            Text(self.cache or "-", style=CACHE_STYLE.get(self.cache, "")),
        ]


class DashboardScreen(DevloopScreen):
    MODE = "dashboard"
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def __init__(self) -> None:
        super().__init__()
        self.live: deque[LiveRow] = deque(maxlen=RECENT_LIMIT)
        self._loaded = False
        self._live_dirty = False  # calls arrived while another screen was shown
        self._alerts_at: float | None = None  # clock() of the last evaluation started

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="kpis"):
            yield StatCard("Saved today", "kpi-today", "Saved/day")
            yield StatCard("Saved (week)", "kpi-week", "Saved/wk")
            yield StatCard("Cache hits", "kpi-cache")
            # the provider's prompt cache: `devloop spend`'s p-cache column
            yield StatCard("Prompt cache", "kpi-pcache", "p-cache")
            yield StatCard("Served locally", "kpi-local", "Local")
        yield AlertsBanner(id="alerts-banner")
        with Horizontal(id="dash-body"):
            with Vertical(id="live-pane"):
                yield Label("Live calls", classes="pane-title")
                yield LineTable(LIVE_COLUMNS, id="live-calls")
                yield Static("", id="live-empty")
            with Vertical(id="side-pane"):
                yield Label("Budgets", classes="pane-title")
                yield BudgetGauges(id="budgets")
                yield Label("Tiers", classes="pane-title")
                yield TierHealthList(id="tier-health")

    def on_mount(self) -> None:
        self.query_one("#live-empty").display = False
        self.query_one(AlertsBanner).show([])
        self.query_one(BudgetGauges).show(None)
        self.show_tiers(None)
        if self.devloop.live:
            self.set_interval(2.0, self.refresh_tiers)
            self.set_interval(ALERTS_EVERY_S, self._alerts_tick)  # the 24 h window slides

    # -- loading ------------------------------------------------------------------------------
    def reload(self) -> None:
        self.load_figures()
        self.check_alerts()

    def _alerts_tick(self) -> None:
        if self.is_visible:
            self.check_alerts()

    def check_alerts(self) -> None:
        now = self.devloop.clock()
        if self._alerts_at is None or now - self._alerts_at >= ALERTS_EVERY_S:
            self._alerts_at = now
            self.load_alerts(now)

    @work(thread=True, exclusive=True, group="dashboard-alerts", exit_on_error=False)
    def load_alerts(self, now: float) -> None:
        """`devloop alerts`' rules on the ledger; the result comes back as a message."""
        app = self.devloop
        alerts = app.reader.read_apart(lambda conn: evaluate(conn, app.profile, now))
        if not get_current_worker().is_cancelled:
            self.post_message(AlertsChecked(alerts))

    def on_alerts_checked(self, message: AlertsChecked) -> None:
        self.query_one(AlertsBanner).show(message.alerts)

    @work(thread=True, exclusive=True, group="dashboard", exit_on_error=False)
    def load_figures(self) -> None:
        app = self.devloop
        now = app.clock()
        reader = app.reader
        recent = None if self._loaded else [LiveRow.from_row(r) for r in reader.recent_calls()]
        summary = reader.summary(now)
        budgets = reader.budgets(app.profile.budgets, now)
        latency = reader.tier_latency(list(app.profile.tiers))
        if not get_current_worker().is_cancelled:
            app.call_from_thread(self.apply_figures, recent, summary, budgets, latency)

    def apply_figures(self, recent: list[LiveRow] | None, summary: Summary,
                      budgets: list[BudgetUse], latency: dict[str, TierLatency]) -> None:
        if recent is not None:
            self._loaded = True
            known = {row.key for row in self.live}
            # Rows that arrived while loading are newer than anything the query returned.
            self.live.extend(row for row in reversed(recent) if row.key not in known)
            self.live = deque(sorted(self.live, key=lambda r: r.ts), maxlen=RECENT_LIMIT)
            self.redraw_live()
        self.show_summary(summary)
        self.query_one(BudgetGauges).show(budgets)
        self.latency = latency
        self.show_tiers(latency)
        self.data_shown()

    def show_summary(self, s: Summary) -> None:
        today = self.query_one("#kpi-today", StatCard)
        today.show(usd(s.saved_today), calls(s.calls_today))
        # "today" is the calendar day in the `timezone` setting's zone (budgets use it too)
        today.border_subtitle = f"{zone_label(self.devloop.clock(), self.devloop.reader.tz)} day"
        self.query_one("#kpi-week", StatCard).show(usd(s.saved_week), calls(s.calls_week))
        self.query_one("#kpi-cache", StatCard).show(percent(s.cache_hit_rate), "this week")
        self.query_one("#kpi-pcache", StatCard).show(percent(s.provider_cache_hit_rate),
                                                     "this week")
        self.query_one("#kpi-local", StatCard).show(percent(s.local_share), "this week")

    def show_tiers(self, latency: dict[str, TierLatency] | None) -> None:
        gw = self.devloop.gateway
        hosting = self.devloop.host is not None and self.devloop.live
        self.query_one(TierHealthList).show(tier_states(self.devloop.profile, gw, latency,
                                                        hosting=hosting))

    def refresh_tiers(self) -> None:
        self.show_tiers(getattr(self, "latency", None))

    # -- live ---------------------------------------------------------------------------------
    def on_call_logged(self, message: CallLogged) -> None:
        self.live.append(LiveRow.from_record(message.record))
        if self.is_visible:
            self.redraw_live()
        else:
            self._live_dirty = True

    def redraw_live(self) -> None:
        self._live_dirty = False
        table = self.query_one("#live-calls", LineTable)
        table.clear()
        seen: set[str] = set()
        for row in reversed(self.live):  # newest first
            if row.key not in seen:
                seen.add(row.key)
                table.add_line(row.cells(), key=row.key)
        empty = self.query_one("#live-empty", Static)
        empty.display = not self.live
        if not self.live:
            url = f"http://{self.devloop.settings.host}:{self.devloop.settings.port}"
            empty.update(f"No calls yet. Point a client at {url}/v1 (OpenAI) or {url} "
                         "(Ollama); each call shows here as it happens.")

    def on_screen_resume(self) -> None:
        if self._live_dirty:  # DevloopScreen.on_screen_resume (called next) reloads if stale
            self.redraw_live()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a live call opens it on the Calls screen."""
        if event.row_key.value:
            self.devloop.show_call(event.row_key.value)
