"""6 Backends: each tier's health, latency and models, and the Continue config to copy."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from devloop.agents import client_base_url
from devloop.continue_config import (
    autocomplete_model_for,
    models_for_profile,
    render_continue_config,
)
from devloop.store.reports import TierLatency
from devloop.tui.formatting import millis
from devloop.tui.health import tier_states
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.widgets.line_table import Column, LineTable
from devloop.tui.widgets.stats import STATE_GLYPH, TierState

# Each tier's detail (probe result, error, model state) is in the wrapped list below the
# table, never cut to a column's width.
COLUMNS: list[Column] = [("Tier", 9), ("Backend", 8), ("State", 9), ("p50", 6, "right"),
                         ("p95", 6, "right"), ("Calls", 5, "right"), ("Models", 22)]
DETAIL_REFRESH_S = 2.0
PROVIDERS = ("openai", "ollama")


def continue_yaml(app: Any, provider: str) -> str:
    """The Continue.dev config for this endpoint (rendered by devloop.continue_config)."""
    settings, profile = app.settings, app.profile
    return render_continue_config(
        client_base_url(settings.host, settings.port), provider,  # type: ignore[arg-type]
        models_for_profile(list(profile.tiers)),
        autocomplete_model=autocomplete_model_for(profile.tiers),
    )


def tier_detail(state: TierState, cfg: Any, gw: Any) -> str:
    """The probe's word (or why the tier is down), with what the backend knows of itself
    now: the embedded model loads after the probe that said "not loaded yet"."""
    if state.state == "off":
        where = f"{cfg.base_url} · " if cfg.base_url else ""
        return f"{where}not probed: this window does not host the endpoint"
    if gw is None:  # the hosted endpoint is starting
        return state.detail
    last = gw.router.health[state.tier].last
    live = gw.router.backends[state.tier].state_detail()
    if state.state == "down":
        detail = state.detail
    else:
        detail = live or (last.detail if last and state.state == "ok" else state.detail)
    if last and last.latency_ms:
        detail = f"probe {millis(last.latency_ms)} · {detail}"
    return detail or cfg.base_url or ""


class BackendsScreen(DevloopScreen):
    MODE = "backends"
    AUTO_FOCUS = "#tiers-table"
    BINDINGS = [
        Binding("c", "copy", "Copy config"),
        Binding("o", "provider", "openai/ollama"),
        Binding("s", "save", "Save config"),
        Binding("r", "refresh", "Re-check"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.provider = "openai"
        self.config_text = ""
        self.latency: dict[str, TierLatency] = {}

    def compose_body(self) -> ComposeResult:
        yield LineTable(COLUMNS, id="tiers-table")
        yield Static("", id="tier-details")
        yield Label("", id="continue-title", classes="pane-title")
        with VerticalScroll(id="continue-pane"):
            yield Static("", id="continue-config")

    def on_mount(self) -> None:
        self.show_config()
        if self.devloop.live:  # the embedded model loads on a call or a load request
            self.set_interval(DETAIL_REFRESH_S, self.refresh_tiers)

    def refresh_tiers(self) -> None:
        """Redraw from the router's and backends' in-memory state (no I/O)."""
        if self.is_visible and self.loads:
            self.show_tiers(self.latency)

    # -- health -------------------------------------------------------------------------------
    def reload(self) -> None:
        self.load_latency()
        if self.devloop.gateway is not None and self.devloop.live:
            self.probe()

    @work(thread=True, exclusive=True, group="backends-latency", exit_on_error=False)
    def load_latency(self) -> None:
        latency = self.devloop.reader.tier_latency(list(self.devloop.profile.tiers))
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_tiers, latency)

    @work(exclusive=True, group="backends-probe", exit_on_error=False)
    async def probe(self) -> None:
        gw = self.devloop.gateway
        if gw is not None:
            await gw.router.check_all()  # async I/O on the loop, each with its own timeout
            self.show_tiers(self.latency)

    def show_tiers(self, latency: dict[str, TierLatency]) -> None:
        self.latency = latency
        app = self.devloop
        gw = app.gateway
        table = self.query_one("#tiers-table", LineTable)
        keep = table.cursor_row
        table.clear()
        details = Table.grid(padding=(0, 1), expand=True)
        details.add_column(style="bold", no_wrap=True, min_width=9)
        details.add_column(ratio=1)  # wraps at word boundaries
        for state in tier_states(app.profile, gw, latency):
            cfg = app.profile.tiers[state.tier]
            lat = latency.get(state.tier)
            last = gw.router.health[state.tier].last if gw is not None else None
            models = cfg.all_models() + [m for m in (last.models if last else [])
                                         if m not in cfg.all_models()]
            glyph, style = STATE_GLYPH.get(state.state, ("○", "dim"))
            table.add_line([
                Text(state.tier, style="bold"), cfg.backend,
                Text(f"{glyph} {state.state}", style=style),
                millis(lat.p50_ms) if lat else "-", millis(lat.p95_ms) if lat else "-",
                str(lat.calls) if lat else "0", ", ".join(models)], key=state.tier)
            details.add_row(state.tier, Text(tier_detail(state, cfg, gw), style="dim"))
        if keep < table.row_count:
            table.move_cursor(row=keep)
        self.query_one("#tier-details", Static).update(details)
        self.data_shown()

    # -- Continue config ----------------------------------------------------------------------
    def show_config(self) -> None:
        self.config_text = continue_yaml(self.devloop, self.provider)
        self.query_one("#continue-title", Label).update(
            f"Continue config ({self.provider}) - c copy · o switch provider · s save to file")
        self.query_one("#continue-config", Static).update(
            Syntax(self.config_text, "yaml", theme="ansi_dark", background_color="default"))

    def action_provider(self) -> None:
        self.provider = PROVIDERS[(PROVIDERS.index(self.provider) + 1) % len(PROVIDERS)]
        self.show_config()

    def action_copy(self) -> None:
        from devloop.tui.clipboard import copy_text

        how = copy_text(self.app, self.config_text)
        self.notify(f"Continue config {how}; paste it into ~/.continue/config.yaml")

    def action_save(self) -> None:
        path = self.devloop.settings.home / f"continue-{self.provider}.yaml"
        self.save_config(path, self.config_text)

    @work(thread=True, group="backends-save", exit_on_error=False)
    def save_config(self, path: Any, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"cannot write {path}: {exc.strerror}",
                                      severity="error")
            return
        self.app.call_from_thread(self.notify, f"saved {path}")
