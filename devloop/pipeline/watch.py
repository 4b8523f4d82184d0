"""`devloop watch`: re-run stages 1 to 3 when an eval set or a profile changes.

``EvalsetWatcher`` is the reusable part (the TUI uses it too): watchdog reports file events
on its own thread; they are debounced per file (editors write a file in several steps) and
handed to a worker thread that owns an asyncio loop and one Checker, so the Gateway and the
LLMLingua model stay loaded between runs. Every step is reported through ``on_event``
(called on the worker thread: a TUI should hop to its own thread, e.g. call_from_thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from devloop.config import ConfigError, Profile, Settings, load_profile
from devloop.evals.evalset import find_evalsets, promptfoo_config_for
from devloop.evals.files import load_one as load_evalset
from devloop.paths import display_path
from devloop.pipeline.checker import STAGES, Checker, CheckReport, last_prompt_hash

EventKind = Literal["ready", "started", "stage", "done", "invalid", "stale", "removed",
                    "profile", "progress"]
SUFFIXES = (".yaml", ".yml")


@dataclass(slots=True)
class WatchEvent:
    kind: EventKind
    file: str
    report: CheckReport | None = None
    stage: str | None = None
    message: str = ""
    ts: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind, "file": self.file, "ts": round(self.ts, 3)}
        if self.message:
            out["message"] = self.message
        if self.stage:
            out["stage"] = self.stage
        if self.report is not None:
            out["prompt_hash"] = self.report.prompt_hash
            if self.kind == "stage" and self.stage:
                out["result"] = self.report.to_json()["stages"][self.stage]
            elif self.kind == "done":
                out["check"] = self.report.to_json()
        return out


class _Handler(FileSystemEventHandler):
    """Every event that touches a *.yaml path, the destination of a move included (editors
    save by writing a temp file and renaming it over the original)."""

    def __init__(self, notify: Callable[[Path], None]) -> None:
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                path = Path(raw if isinstance(raw, str) else raw.decode())
                if path.name.startswith("."):
                    continue
                if path.suffix in SUFFIXES or promptfoo_config_for(path) is not None:
                    self.notify(path)  # a promptfoo folder: its prompt and test files too


class FolderWatcher:
    """One watchdog observer over some folders (not recursive), reporting each *.yaml path
    that changed, on watchdog's thread. The only watchdog user: `devloop watch` and the TUI."""

    def __init__(self, folders: Sequence[Path], notify: Callable[[Path], None]) -> None:
        self.folders = list(dict.fromkeys(f.resolve() for f in folders if f.is_dir()))
        self.notify = notify
        self._observer: Any = None

    def start(self) -> bool:
        """Start watching; False when none of the folders exists (nothing to watch)."""
        if not self.folders:
            return False
        self._observer = Observer()
        self._observer.daemon = True
        handler = _Handler(self.notify)
        for folder in self.folders:
            self._observer.schedule(handler, str(folder), recursive=False)
        self._observer.start()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=timeout)
            self._observer = None


class EvalsetWatcher:
    """Watch eval sets (a folder or one file) and a profiles folder; re-check on change."""

    def __init__(self, settings: Settings, profile: Profile, target: str | Path,
                 on_event: Callable[[WatchEvent], None], *, profile_name: str | None = None,
                 profiles_dir: str | Path | None = "profiles", debounce: float = 0.3,
                 stages: Sequence[str] = STAGES, initial_run: bool = True,
                 checker_factory: Callable[[Settings, Profile], Checker] | None = None,
                 watch_files: bool = True) -> None:
        """``watch_files=False``: no observer of its own; a host that already watches the
        folder (the TUI) calls ``trigger`` for each changed file instead."""
        self.settings = settings
        self.profile = profile
        self.profile_name = profile_name or settings.profile
        self.target = Path(target)
        self.folder = self.target if self.target.is_dir() else self.target.parent
        self.profiles_dir = Path(profiles_dir) if profiles_dir else None
        self.on_event = on_event
        self.debounce = debounce
        self.stages = tuple(stages)
        self.initial_run = initial_run
        self._factory = checker_factory or (lambda s, p: Checker(s, p))
        self.checker: Checker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Path] | None = None
        self._timers: dict[Path, asyncio.TimerHandle] = {}
        self._queued: set[Path] = set()
        self._thread: threading.Thread | None = None
        self._observer: FolderWatcher | None = None
        self.watch_files = watch_files
        self._main_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Watch in the running event loop until cancelled. For a host with its own loop
        (the TUI: ``run_worker(watcher.run())``); events then arrive on that loop's thread.
        A Checker built by ``checker_factory`` around the host's Gateway shares its writer."""
        self._loop = asyncio.get_running_loop()
        self._start_observer()
        try:
            await self._main()
        finally:
            self._stop_observer()

    def start(self) -> None:
        """Watch on a thread of its own (the CLI); events arrive on that thread."""
        self._thread = threading.Thread(target=self._run_thread, name="devloop-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait(self) -> None:
        """Block until stopped (the CLI's main thread; Ctrl-C interrupts)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def trigger(self, path: str | Path) -> None:
        """Queue a re-check of ``path`` as if it had changed (any thread)."""
        self._notify(Path(path))

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.run())
        finally:
            loop.close()

    def _start_observer(self) -> None:
        if not self.watch_files:
            return
        folders = [self.folder] + ([self.profiles_dir] if self.profiles_dir is not None else [])
        self._observer = FolderWatcher(folders, self._notify)
        self._observer.start()

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer = None

    # -- the watching loop ----------------------------------------------------------------
    async def _main(self) -> None:
        self._queue = asyncio.Queue()
        self._main_task = asyncio.current_task()
        self.checker = self._factory(self.settings, self.profile)
        try:
            await self.checker.start(probe=True)
            if self.initial_run:
                for path in self._evalset_files():
                    await self._check(path)
            self._emit(WatchEvent("ready", str(self.target),
                                  message=f"watching {self._watched()}"))
            while True:
                path = await self._queue.get()
                self._queued.discard(path)
                await self._handle(path)
        except asyncio.CancelledError:
            pass
        finally:
            if self.checker is not None:
                await self.checker.close()

    def _shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._main_task is not None:
            self._main_task.cancel()

    def _notify(self, path: Path) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._debounce, path.resolve())

    def _debounce(self, path: Path) -> None:
        assert self._loop is not None
        old = self._timers.pop(path, None)
        if old is not None:
            old.cancel()
        self._timers[path] = self._loop.call_later(self.debounce, self._enqueue, path)

    def _enqueue(self, path: Path) -> None:
        self._timers.pop(path, None)
        if path not in self._queued and self._queue is not None:
            self._queued.add(path)
            self._queue.put_nowait(path)

    async def _handle(self, path: Path) -> None:
        if self.profiles_dir is not None and path.parent == self.profiles_dir.resolve() \
                and path.parent != self.folder.resolve():
            await self._profile_changed(path)
            return
        config = promptfoo_config_for(path)
        if config is not None:  # a prompt, test or var file of a promptfoo config changed
            path = config.resolve()
        if not path.exists():
            self._emit(WatchEvent("removed", self._display(path)))
            return
        if self._in_scope(path):
            await self._check(path)

    async def _profile_changed(self, path: Path) -> None:
        try:
            profile = load_profile(self.profile_name)
        except ConfigError as exc:
            self._emit(WatchEvent("invalid", self._display(path), message=str(exc)))
            return
        if profile == self.profile:
            return
        self._emit(WatchEvent("profile", self._display(path),
                              message=f"profile {profile.name} changed: re-checking"))
        self.profile = profile
        if self.checker is not None:
            await self.checker.close()
        self.checker = self._factory(self.settings, profile)
        await self.checker.start(probe=True)
        for evalset in self._evalset_files():
            await self._check(evalset)

    async def _check(self, path: Path) -> None:
        assert self.checker is not None
        shown = self._display(path)
        try:
            evalset = load_evalset(path)
        except ConfigError as exc:
            self._emit(WatchEvent("invalid", shown, message=str(exc)))
            return
        previous = last_prompt_hash(self.settings.db_path, shown)
        if previous is not None and previous != evalset.prompt_hash:
            await self.checker.mark_stale(shown, evalset.name, evalset.prompt_hash, previous)
            self._emit(WatchEvent("stale", shown, message=f"prompt changed ({previous[:12]} -> "
                                  f"{evalset.prompt_hash[:12]}): its eval is stale"))
        self._emit(WatchEvent("started", shown, message=f"prompt {evalset.prompt_hash[:12]}"))

        def stage_done(report: CheckReport, stage: str) -> None:
            self._emit(WatchEvent("stage", shown, report, stage))

        def progress(message: str) -> None:
            self._emit(WatchEvent("progress", shown, message=message))

        self.checker.on_progress = progress

        report = await self.checker.check_evalset(evalset, shown, self.stages, stage_done)
        self._emit(WatchEvent("done", shown, report, message=f"{report.seconds:.1f}s"))

    # -- helpers ----------------------------------------------------------------------------
    def _emit(self, event: WatchEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not stop the watcher
            import logging

            logging.getLogger("devloop.watch").exception("watch listener failed")

    def _evalset_files(self) -> list[Path]:
        if self.target.is_file():
            return [self.target.resolve()]
        return [p.resolve() for p in find_evalsets([self.target])]

    def _in_scope(self, path: Path) -> bool:
        if self.target.is_file():
            return path == self.target.resolve()
        return path.parent == self.folder.resolve() and path.suffix in SUFFIXES

    @staticmethod
    def _display(path: Path) -> str:
        return display_path(path)

    def _watched(self) -> str:
        shown = [self._display(self.folder.resolve()) + "/"]
        if self.profiles_dir is not None and self.profiles_dir.is_dir():
            shown.append(self._display(self.profiles_dir.resolve()) + "/")
        return " and ".join(dict.fromkeys(shown))
