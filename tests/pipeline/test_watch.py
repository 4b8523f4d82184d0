"""`devloop watch`: an edited eval set is re-checked within 2 s and its eval marked stale;
the watcher class works in process (as the TUI uses it)."""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devloop.config import Settings, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.checker import Checker
from devloop.pipeline.watch import EvalsetWatcher, WatchEvent
from tests.pipeline.conftest import cli_env, devloop_cmd, write

QUICK = """
name: quick
production_model: anthropic/claude-sonnet-4-5
threshold: 0.5
max_tokens: 2
prompt:
  system: {system}
  messages:
    - {{role: user, content: "Say {{{{word}}}}."}}
cases:
  - id: one
    vars: {{word: hi}}
    assert:
      - {{type: not-contains, value: zz-never-zz}}
"""


def quick(system: str) -> str:
    return QUICK.format(system=json.dumps(system))


class Lines:
    """Reads a process's stdout on a thread so the test can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.q.put(line)

    def until(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching event in {timeout}s; saw:\n" +
                                   "".join(self.seen[-20:]))
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if predicate(event):
                return event


@pytest.mark.slow
def test_editing_an_evalset_while_watch_runs_rechecks_it(
        tmp_path: Path, embedded_profile: Path) -> None:
    home = tmp_path / "home"
    path = write(tmp_path / "evalsets" / "quick.yaml", quick("You are terse."))
    proc = subprocess.Popen(
        devloop_cmd("watch", "evalsets", "--json", "--debounce", "0.1", "--profile",
                    str(embedded_profile)),
        cwd=tmp_path, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    lines = Lines(proc)
    try:
        first = lines.until(lambda e: e["event"] == "done", timeout=180)
        old_hash = load_evalset(path).prompt_hash
        assert first["prompt_hash"] == old_hash
        assert set(first["check"]["stages"]) == {"draft", "compression", "cache_order"}
        lines.until(lambda e: e["event"] == "ready", timeout=30)

        # The next edit: a new prompt. How fast the re-check comes is measured by
        # scripts/bench_ladder.py; here only that it comes, with the new prompt's figures.
        path.write_text(quick("You are terse and polite."))
        new_hash = load_evalset(path).prompt_hash
        stale = lines.until(lambda e: e["event"] == "stale", timeout=30)
        done = lines.until(lambda e: e["event"] == "done", timeout=120)
        assert done["prompt_hash"] == new_hash != old_hash
        assert done["file"] == "evalsets/quick.yaml" and stale["file"] == "evalsets/quick.yaml"
        stages = done["check"]["stages"]
        assert stages["draft"]["status"] == "pass" and stages["draft"]["would_cost_usd"] > 0
        assert stages["cache_order"]["status"] == "pass"
        assert stages["compression"]["status"] == "skipped"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0

    conn = sqlite3.connect(home / "devloop.db")
    rows = conn.execute("SELECT stage, status, prompt_hash, result_json FROM prompt_checks "
                        "WHERE stage = 'eval'").fetchall()
    assert len(rows) == 1
    stage, status, prompt_hash, result_json = rows[0]
    assert (status, prompt_hash) == ("stale", new_hash)
    assert json.loads(result_json) == {"previous_prompt_hash": old_hash}
    checked = {r[0] for r in conn.execute("SELECT prompt_hash FROM prompt_checks "
                                          "WHERE stage = 'draft'")}
    assert checked == {old_hash, new_hash}


def test_watcher_class_reports_through_its_callback(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As the TUI uses it: in process, cache-order only, debounced, bad edits reported."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "evalsets"
    path = write(folder / "quick.yaml", quick("You are terse."))
    profile_file = write(tmp_path / "profiles" / "dev.yaml", """
        name: dev
        production_model: anthropic/claude-sonnet-4-5
        tiers:
          local: {backend: ollama, model: m, base_url: "http://127.0.0.1:9"}
    """)
    events: queue.Queue[WatchEvent] = queue.Queue()
    settings = Settings(home=tmp_path / "home")
    watcher = EvalsetWatcher(settings, load_profile(profile_file), folder, events.put,
                             profile_name=str(profile_file), debounce=0.2,
                             stages=("cache_order",),
                             checker_factory=lambda s, p: Checker(s, p, store=True))

    def next_event(kind: str, timeout: float = 10) -> WatchEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event.kind == kind:
                return event
        raise TimeoutError(kind)

    watcher.start()
    try:
        assert next_event("done").report is not None
        next_event("ready")
        # Three quick saves: debounced into one re-check of the last content.
        for i in range(3):
            path.write_text(quick(f"You are terse, version {i}."))
            time.sleep(0.02)
        done = next_event("done")
        assert done.report is not None
        assert done.report.prompt_hash == load_evalset(path).prompt_hash
        time.sleep(0.5)
        assert not any(e.kind == "started" for e in list(events.queue))

        # A broken save is reported as one line; the watcher keeps going.
        path.write_text(quick("x").replace("{type: not-contains", "{type: jsonnet"))
        invalid = next_event("invalid")
        assert "cases.0.assert.0.type: unknown assertion type 'jsonnet'" in invalid.message
        path.write_text(quick("Fixed."))
        assert next_event("done").report is not None

        # A profile change re-checks every eval set under the new profile.
        profile_file.write_text(profile_file.read_text().replace("claude-sonnet-4-5",
                                                                 "claude-haiku-4-5"))
        next_event("profile")
        done = next_event("done")
        assert done.report is not None
        assert done.report.stages["cache_order"].min_cacheable_tokens == 1024  # eval set's model
    finally:
        watcher.stop()


async def test_watcher_runs_in_a_host_loop_sharing_its_gateway(tmp_path: Path,
                                                               embedded_profile: Path) -> None:
    """The TUI's way: the host's event loop and Gateway (one DB writer for the process)."""
    import asyncio

    from devloop.gateway import Gateway
    from devloop.store.checks import latest_checks

    folder = tmp_path / "evalsets"
    path = write(folder / "quick.yaml", quick("You are terse."))
    settings = Settings(home=tmp_path / "home")
    profile = load_profile(embedded_profile)
    gateway = Gateway(settings, profile)
    await gateway.start(probe=False)
    done: asyncio.Queue[WatchEvent] = asyncio.Queue()
    host_thread = threading.get_ident()
    threads: set[int] = set()

    def on_event(event: WatchEvent) -> None:
        threads.add(threading.get_ident())
        if event.kind == "done":
            done.put_nowait(event)

    watcher = EvalsetWatcher(settings, profile, folder, on_event, profiles_dir=None,
                             debounce=0.05, stages=("cache_order",),
                             checker_factory=lambda s, p: Checker(s, p, gateway=gateway))
    task = asyncio.create_task(watcher.run())
    try:
        first = await asyncio.wait_for(done.get(), 30)
        await asyncio.sleep(0.3)  # let the observer settle before editing
        path.write_text(quick("You are terse and exact."))
        second = await asyncio.wait_for(done.get(), 10)
        assert first.report is not None and second.report is not None
        assert second.report.prompt_hash == load_evalset(path).prompt_hash
        assert second.report.prompt_hash != first.report.prompt_hash
        assert threads == {host_thread}  # callbacks on the host's loop thread
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # The watcher did not close the host's gateway; its results went through its writer.
    stored = latest_checks(settings.db_path, prompt_hash=second.report.prompt_hash)
    assert sorted((r["stage"], r["status"]) for r in stored) == [("cache_order", "pass"),
                                                                 ("eval", "stale")]
    await gateway.close()
