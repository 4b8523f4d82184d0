"""Dashboard widgets: stat cards, budget gauges, tier health and the alerts banner (plain
renderables)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from devloop.alerts import Alert
from devloop.store.reports import BudgetUse
from devloop.tui.formatting import short_usd

GAUGE_WIDTH = 12
ALERTS_SHOWN = 2  # then "+N more"


class StatCard(Static):
    """A bordered figure with a caption: "Saved today / $12.40 / 83 calls". Five share 80
    columns: a card too narrow for its title shows the short one."""

    def __init__(self, title: str, card_id: str, short: str | None = None) -> None:
        super().__init__("-", id=card_id, classes="stat-card")
        self.title, self.short = title, short or title
        self.border_title = title

    def on_resize(self) -> None:
        fits = len(self.title) <= self.outer_size.width - 6  # corners, dashes and spaces
        self.border_title = self.title if fits else self.short

    def show(self, value: str, caption: str = "", style: str = "bold") -> None:
        text = Text(value, style=style)
        if caption:
            text.append("\n" + caption, style="dim")
        self.update(text)


def gauge(ratio: float, width: int = GAUGE_WIDTH) -> Text:
    filled = min(width, round(max(ratio, 0.0) * width))
    style = "red" if ratio >= 1 else "yellow" if ratio >= 0.8 else "green"
    bar = Text("█" * filled, style=style)
    bar.append("░" * (width - filled), style="dim")
    return bar


class BudgetGauges(Static):
    def show(self, uses: list[BudgetUse] | None) -> None:
        if uses is None:
            self.update(Text("loading…", style="dim"))
            return
        if not uses:
            self.update(Text("no budgets in this profile", style="dim"))
            return
        text = Text()
        for i, use in enumerate(uses):
            if i:
                text.append("\n")
            text.append(f"{use.scope}", style="bold")
            text.append(f" /{use.period}\n", style="dim")
            text.append_text(gauge(use.ratio))
            text.append(f" {short_usd(use.spent_usd)}/{short_usd(use.limit_usd)}")
        self.update(text)


@dataclass(slots=True)
class TierState:
    tier: str
    backend: str
    state: str  # ok, down, wait (being probed), idle (no calls yet), off (endpoint not hosted)
    detail: str = ""


STATE_GLYPH = {"ok": ("●", "green"), "down": ("●", "red"), "idle": ("○", "yellow"),
               "off": ("○", "dim"), "wait": ("◌", "yellow")}


class TierHealthList(Static):
    def show(self, states: list[TierState]) -> None:
        text = Text()
        for i, s in enumerate(states):
            if i:
                text.append("\n")
            glyph, style = STATE_GLYPH.get(s.state, ("○", "dim"))
            text.append(f"{glyph} ", style=style)
            text.append(f"{s.tier:<9}", style="bold")
            text.append(f"{s.state:<5}", style=style)
            if s.detail:
                text.append(f" {s.detail}", style="dim")
        self.update(text)


class AlertsBanner(Static):
    """The alert rules that fire now (`devloop alerts`), wrapped; hidden when none. Each
    message names the figure, the threshold, the rule and where to look."""

    def show(self, alerts: list[Alert]) -> None:
        self.display = bool(alerts)
        text = Text()
        for i, a in enumerate(alerts[:ALERTS_SHOWN]):
            if i:
                text.append("\n")
            text.append("▲ ", style="bold")
            text.append(a.message)
        if len(alerts) > ALERTS_SHOWN:
            text.append(f"\n+{len(alerts) - ALERTS_SHOWN} more: devloop alerts", style="bold")
        self.update(text)
