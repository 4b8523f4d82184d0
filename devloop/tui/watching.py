"""Watching ./evalsets in the TUI: one watchdog observer (devloop.pipeline.watch.FolderWatcher)
reports every saved file (the row updates at once) and, with automatic checks on, hands it to
the checker, which re-runs the check stages on the TUI's own loop and Gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from devloop.pipeline.checker import Checker
from devloop.pipeline.watch import EvalsetWatcher, FolderWatcher, WatchEvent


class FileWatcher:
    """Every *.yaml path saved in ``folder``, as ``on_change(path, removed)`` on watchdog's
    thread."""

    def __init__(self, folder: Path, on_change: Callable[[Path, bool], None]) -> None:
        self.folder = folder
        self.on_change = on_change
        self.also: Callable[[Path], None] | None = None  # the automatic checker, when on
        self._watcher: FolderWatcher | None = None

    def start(self) -> bool:
        """Start watching; False when the folder does not exist (nothing to watch)."""
        self._watcher = FolderWatcher([self.folder], self._report)
        return self._watcher.start()

    def _report(self, path: Path) -> None:
        self.on_change(path, not path.exists())
        if self.also is not None:
            self.also(path)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop(timeout=2)
            self._watcher = None


class AutoChecker:
    """Re-runs `devloop check` stages when an eval set is saved (devloop.pipeline.watch),
    reporting each step through ``on_event(path, kind, message)`` on the TUI's loop.

    It has no observer of its own (the TUI's FileWatcher calls ``trigger``) and no Gateway of
    its own: ``run`` is given the endpoint's, so one process holds one DB writer and one
    embedded model."""

    def __init__(self, settings: Any, profile: Any, folder: Path,
                 on_event: Callable[[Path, str, str], None]) -> None:
        self.settings, self.profile, self.folder = settings, profile, folder
        self.on_event = on_event
        self._watcher: EvalsetWatcher | None = None

    async def run(self, gateway: Any) -> None:
        """Check on the caller's loop until ``stop``. ``gateway`` is the process's Gateway
        (None only when the TUI hosts no endpoint: the checker then starts the one)."""
        if not self.folder.is_dir():
            return

        def forward(event: WatchEvent) -> None:
            self.on_event(Path(event.file).resolve(), event.kind, event.message)

        self._watcher = EvalsetWatcher(
            self.settings, self.profile, self.folder, forward, initial_run=False,
            watch_files=False,
            checker_factory=lambda s, p: Checker(s, p, gateway=gateway))
        await self._watcher.run()

    def trigger(self, path: Path) -> bool:
        if self._watcher is None:
            return False
        self._watcher.trigger(path)
        return True

    def stop(self) -> None:
        """Cancel the watching loop (a check in progress is cancelled with it)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
