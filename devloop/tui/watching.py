"""Watching ./evalsets with watchdog: a light watcher that reports every saved file (the row
updates at once), and the automatic checker that re-runs the check stages on save.

Editors save in several steps (write a temp file, rename it over the original), so every
event that touches a *.yaml path is reported, including the destination of a move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("devloop.tui")
SUFFIXES = (".yaml", ".yml")


class FileWatcher:
    def __init__(self, folder: Path, on_change: Callable[[Path, bool], None]) -> None:
        self.folder = folder
        self.on_change = on_change
        self._observer: Any = None

    def start(self) -> bool:
        """Start watching; False when the folder does not exist (nothing to watch)."""
        if not self.folder.is_dir():
            return False
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        report = self.on_change

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    path = Path(raw if isinstance(raw, str) else raw.decode()) if raw else None
                    if path and path.suffix in SUFFIXES and not path.name.startswith("."):
                        report(path, not path.exists())

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None


class AutoChecker:
    """Re-runs `devloop check` stages when an eval set is saved (devloop.pipeline.watch),
    reporting each step through ``on_event(path, kind, message)`` from its own thread."""

    def __init__(self, settings: Any, profile: Any, folder: Path,
                 on_event: Callable[[Path, str, str], None]) -> None:
        self.settings, self.profile, self.folder = settings, profile, folder
        self.on_event = on_event
        self._watcher: Any = None

    def start(self) -> bool:
        """Blocking (the checker's gateway starts first): call it from a thread worker."""
        if not self.folder.is_dir():
            return False
        try:
            from devloop.pipeline.watch import EvalsetWatcher as PipelineWatcher
        except ImportError:
            log.info("devloop.pipeline.watch is not available: no automatic checks")
            return False

        def forward(event: Any) -> None:
            self.on_event(Path(event.file).resolve(), event.kind, event.message)

        self._watcher = PipelineWatcher(self.settings, self.profile, self.folder, forward,
                                        initial_run=False)
        self._watcher.start()
        return True

    def trigger(self, path: Path) -> bool:
        if self._watcher is None:
            return False
        self._watcher.trigger(path)
        return True

    def stop(self, timeout: float = 3.0) -> None:
        """Stop without waiting for a check in progress (its thread is a daemon)."""
        import threading

        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            stopper = threading.Thread(target=watcher.stop, daemon=True)
            stopper.start()
            stopper.join(timeout)
