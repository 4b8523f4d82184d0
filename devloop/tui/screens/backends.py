"""6 Backends: each tier's health, latency and models, and the Continue config to copy."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
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
from devloop.tui.widgets.stats import STATE_GLYPH

COLUMNS: list[Column] = [("Tier", 9), ("Backend", 8), ("State", 9), ("p50", 6, "right"),
                         ("p95", 6, "right"), ("Calls", 5, "right"), ("Models", 24),
                         ("Detail", 50)]
PROVIDERS = ("openai", "ollama")


def continue_yaml(app: Any, provider: str) -> str:
    """The Continue.dev config for this endpoint (rendered by devloop.continue_config)."""
    settings, profile = app.settings, app.profile
    return render_continue_config(
        client_base_url(settings.host, settings.port), provider,  # type: ignore[arg-type]
        models_for_profile(list(profile.tiers)),
        autocomplete_model=autocomplete_model_for(profile.tiers),
    )


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
        yield Label("", id="continue-title", classes="pane-title")
        with VerticalScroll(id="continue-pane"):
            yield Static("", id="continue-config")

    def on_mount(self) -> None:
        self.show_config()

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
        table.clear()
        for state in tier_states(app.profile, gw, latency):
            cfg = app.profile.tiers[state.tier]
            lat = latency.get(state.tier)
            last = gw.router.health[state.tier].last if gw is not None else None
            models = cfg.all_models() + [m for m in (last.models if last else [])
                                         if m not in cfg.all_models()]
            glyph, style = STATE_GLYPH.get(state.state, ("○", "dim"))
            detail = (last.detail if last and state.state == "ok" else state.detail) or ""
            if last and last.latency_ms:
                detail = f"probe {millis(last.latency_ms)} · {detail}"
            table.add_line([
                Text(state.tier, style="bold"), cfg.backend,
                Text(f"{glyph} {state.state}", style=style),
                millis(lat.p50_ms) if lat else "-", millis(lat.p95_ms) if lat else "-",
                str(lat.calls) if lat else "0", ", ".join(models),
                detail or (cfg.base_url or "")], key=state.tier)
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
