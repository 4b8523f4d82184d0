"""The devloop TUI: six screens over the ledger, hosting the endpoint in the same process.

`devloop` (no arguments) calls ``run_tui``. The endpoint (gateway + uvicorn) runs as a worker
on Textual's event loop; every ledger row the gateway writes reaches the screens as a
``CallLogged`` message. All reads happen in thread workers so a key never waits on SQLite.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen

from devloop.config import Profile, Settings
from devloop.logfile import quiet_libraries
from devloop.server.hosting import EndpointHost, HostStatus
from devloop.store.calls import CallRecord
from devloop.store.reports import LedgerReader
from devloop.tui.jobs import CliJob
from devloop.tui.messages import CallLogged, CheckProgress, EndpointStatus, EvalsetChanged
from devloop.tui.screens.backends import BackendsScreen
from devloop.tui.screens.base import DevloopScreen
from devloop.tui.screens.calls import CallsScreen
from devloop.tui.screens.dashboard import DashboardScreen
from devloop.tui.screens.evals import EvalsScreen
from devloop.tui.screens.prompts import PromptsScreen
from devloop.tui.screens.spend import SpendScreen
from devloop.tui.watching import AutoChecker, FileWatcher
from devloop.tui.widgets.nav import SCREENS

log = logging.getLogger("devloop.tui")


class DevloopApp(App[int]):
    CSS_PATH = "devloop.tcss"
    TITLE = "devloop"
    ENABLE_COMMAND_PALETTE = True
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"),
                                                                       (110, "-wide")]
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "calls": CallsScreen,
        "prompts": PromptsScreen,
        "evals": EvalsScreen,
        "spend": SpendScreen,
        "backends": BackendsScreen,
    }
    BINDINGS: ClassVar[list[Any]] = [
        *(Binding(str(i), f"switch_mode('{mode}')", title, show=False)
          for i, (mode, title) in enumerate(SCREENS, start=1)),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    endpoint: reactive[HostStatus | None] = reactive(None, always_update=True)

    def __init__(self, settings: Settings, profile: Profile, *, serve: bool = True,
                 live: bool = True, auto_check: bool | None = None,
                 evalsets_dir: Path | str = "evalsets",
                 clock: Callable[[], float] = time.time) -> None:
        """``serve`` hosts the endpoint; ``live`` runs timers, health probes and the file
        watcher; ``auto_check`` (default: ``live``) re-runs `devloop check` stages when an
        eval set is saved. Snapshot tests turn all off and pass a fixed ``clock``."""
        super().__init__()
        self.settings, self.profile = settings, profile
        self.live = live
        self.evalsets_dir = Path(evalsets_dir)
        self.clock = clock
        self.reader = LedgerReader(settings.db_path, settings.zone())
        self.host = EndpointHost(settings, profile, self._on_call, self._on_host_status,
                                 prepare=self.reader.ensure_schema) if serve else None
        self.watcher = FileWatcher(self.evalsets_dir, self._on_evalset_change)
        self.auto_check = live if auto_check is None else auto_check
        self.auto_checker = AutoChecker(settings, profile, self.evalsets_dir,
                                        self._on_check_event)
        self.jobs: set[CliJob] = set()
        self._screens: list[DevloopScreen] = []
        self.sub_title = f"profile {profile.name}"

    @property
    def gateway(self) -> Any:
        return self.host.gateway if self.host is not None else None

    # -- lifecycle ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.switch_mode("dashboard")
        if self.host is not None:
            self.run_worker(self.host.serve(), name="endpoint", group="endpoint",
                            exit_on_error=False)
        if self.host is not None and self.live:
            self.run_worker(self._first_probe(), group="probe", exit_on_error=False)
        if self.live:
            self.watcher.start()
        if self.auto_check:
            self.watcher.also = self._auto_check_file
            self.run_worker(self._auto_check(), group="auto-check", exit_on_error=False)

    async def _auto_check(self) -> None:
        """The automatic checker shares the endpoint's Gateway (one per process)."""
        gateway = None
        if self.host is not None:
            gateway = await self.host.ready()
            if gateway is None:  # the endpoint failed to start (shown on screen)
                return
        await self.auto_checker.run(gateway)

    async def _first_probe(self) -> None:
        """Probe every tier once as soon as the endpoint is up, so the Tiers panel shows the
        truth from the start (the router's own probes wait a health interval first)."""
        assert self.host is not None
        gateway = await self.host.ready()
        if gateway is None:
            return
        await gateway.router.check_all()
        for screen in self._screens:
            refresh = getattr(screen, "refresh_tiers", None)
            if refresh is not None:
                refresh()

    def _auto_check_file(self, path: Path) -> None:
        """Called on watchdog's thread: trigger is thread-safe."""
        self.auto_checker.trigger(path)

    async def action_quit(self) -> None:
        """Stop the endpoint gracefully (in-flight calls finish and are logged), then exit."""
        await self.shutdown()
        self.exit(0)

    async def shutdown(self) -> None:
        self.watcher.stop()
        self.auto_checker.stop()  # before the Gateway it uses closes
        for job in list(self.jobs):
            job.terminate()
        if self.host is not None:
            await self.host.stop()

    def on_unmount(self) -> None:
        self.watcher.stop()
        self.reader.close()

    # -- messages from the endpoint and the watcher --------------------------------------------
    def _on_call(self, record: CallRecord) -> None:
        """The gateway's ledger listener (runs on this loop); post, never block the gateway."""
        self.post_message(CallLogged(record))

    def _on_host_status(self, status: HostStatus) -> None:
        self.post_message(EndpointStatus(status))

    def _on_evalset_change(self, path: Path, removed: bool) -> None:
        """Called on watchdog's thread: post_message is thread-safe."""
        self.post_message(EvalsetChanged(path, removed))

    def _on_check_event(self, path: Path, kind: str, text: str) -> None:
        """Called on this loop (the checker runs on it)."""
        self.post_message(CheckProgress(path, kind, text))

    def on_check_progress(self, message: CheckProgress) -> None:
        if message.kind == "invalid":
            self.notify(message.text, title="Eval set", severity="error", timeout=8)
        self.broadcast(lambda: CheckProgress(message.path, message.kind, message.text))

    def on_call_logged(self, message: CallLogged) -> None:
        self.broadcast(lambda: CallLogged(message.record))

    def on_evalset_changed(self, message: EvalsetChanged) -> None:
        self.broadcast(lambda: EvalsetChanged(message.path, message.removed))

    def on_endpoint_status(self, message: EndpointStatus) -> None:
        self.endpoint = message.status
        if message.status.state == "failed":
            self.notify(message.status.detail, title="Endpoint", severity="error", timeout=15)

    def register_screen(self, screen: DevloopScreen) -> None:
        self._screens.append(screen)
        self.call_after_refresh(settle_gc)

    def broadcast(self, make: Callable[[], Message]) -> None:
        """Post a message to every screen opened so far (a message is delivered only once,
        so each screen gets its own)."""
        for screen in self._screens:
            screen.post_message(make())

    # -- navigation ---------------------------------------------------------------------------
    def show_call(self, request_id: str) -> None:
        self.switch_mode("calls")
        calls = next((s for s in self._screens if isinstance(s, CallsScreen)), None)
        if calls is not None:
            calls.show_request(request_id)
        else:  # first visit: the screen mounts on the next refresh
            self.call_after_refresh(self.show_call, request_id)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for i, (mode, title) in enumerate(SCREENS, start=1):
            yield SystemCommand(f"{title} ({i})", f"Show the {title} screen",
                                lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Run check", "Run stages 1-3 on the selected eval set (Prompts)",
                            lambda: self._on_mode_screen("prompts", "action_check"))
        yield SystemCommand("Run eval", "Estimate, confirm and run the eval of the selected "
                            "eval set (Prompts)",
                            lambda: self._on_mode_screen("prompts", "action_eval"))
        yield SystemCommand("Copy Continue config", "Copy the Continue config for this "
                            "endpoint (Backends)",
                            lambda: self._on_mode_screen("backends", "action_copy"))
        yield SystemCommand("Open a call", "Find a call by id, tier, feature or model (Calls)",
                            lambda: self._on_mode_screen("calls", "action_filter"))
        yield SystemCommand("Switch profile", "Which profile is used, and how to change it",
                            self._profile_help)

    def _on_mode_screen(self, mode: str, action: str) -> None:
        """Switch to the screen, then run its action once it is mounted."""
        self.switch_mode(mode)

        def run(tries: int) -> None:
            target = getattr(self.screen, action, None)
            if target is not None:
                target()
            elif tries:  # the screen mounts on a later refresh on its first visit
                self.call_after_refresh(run, tries - 1)

        self.call_after_refresh(run, 10)

    def _profile_help(self) -> None:
        self.notify(f"profile {self.profile.name} (the endpoint routes with it while it runs); "
                    f"quit and start `devloop --profile NAME` to switch", timeout=10)


def settle_gc() -> None:
    """Move what exists now (modules, widgets, the price map) out of the collector's way.

    A full collection walks every tracked object: ~70 ms here, a visible stall every few
    screens. Frozen objects are skipped, so collections stay short; the screens, widgets and
    caches made so far live as long as the app anyway.
    """
    gc.freeze()


def _log_to_file(settings: Settings) -> None:
    """The terminal belongs to the TUI: server and gateway logs go to DEVLOOP_HOME/tui.log."""
    settings.ensure_home()
    handler = logging.FileHandler(settings.home / "tui.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    quiet_libraries()


def run_tui(settings: Settings, profile: Profile) -> int:
    """Run the TUI (hosting the endpoint) until quit; the process exit status."""
    _log_to_file(settings)
    app = DevloopApp(settings, profile)
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)
