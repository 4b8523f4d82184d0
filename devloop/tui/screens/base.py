"""What every screen shares: the nav bar, the footer, and reloading only when visible."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from devloop.tui.messages import CallLogged
from devloop.tui.widgets.keybar import KeyBar
from devloop.tui.widgets.nav import NavBar

if TYPE_CHECKING:
    from devloop.tui.app import DevloopApp

RELOAD_DEBOUNCE_S = 0.5
log = logging.getLogger("devloop.tui")


class DevloopScreen(Screen[None]):
    """Textual calls a handler (on_mount, on_screen_resume, ...) on every class of the MRO
    that defines one, base class last: subclasses add to these, never call super()."""

    MODE: ClassVar[str] = ""
    # A new ledger row makes this screen's figures out of date.
    RELOAD_ON_CALL: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__(id=f"screen-{self.MODE}")
        self.stale = True
        self.loads = 0  # data deliveries so far: tests and scripts/bench_tui.py wait on it
        self._reload_timer: Timer | None = None

    @property
    def devloop(self) -> DevloopApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield KeyBar(list(self.BINDINGS))

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.devloop.register_screen(self)

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.reload()

    def reload(self) -> None:
        """Start the workers that fetch this screen's data."""

    def data_shown(self) -> None:
        """Called at the end of each method that puts fetched data on screen."""
        self.loads += 1

    @property
    def is_visible(self) -> bool:
        return self.app.screen is self

    def reload_soon(self) -> None:
        """Coalesce bursts (many calls a second) into one reload; hidden screens wait."""
        if not self.is_visible:
            self.stale = True
            return
        if self._reload_timer is None:
            self._reload_timer = self.set_timer(RELOAD_DEBOUNCE_S, self._debounced_reload)

    def _debounced_reload(self) -> None:
        self._reload_timer = None
        self.reload()

    def on_call_logged(self, message: CallLogged) -> None:
        if self.RELOAD_ON_CALL:
            self.reload_soon()

    def action_refresh(self) -> None:
        self.reload()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed read is reported, and the TUI (and the endpoint it hosts) keeps running."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            log.error("%s failed", event.worker.name, exc_info=error)
            self.notify(f"{event.worker.name}: {type(error).__name__}: {error}",
                        title="Could not load", severity="error", timeout=10)
