"""How fast the TUI answers a key with a large ledger.

Seeds a temporary DEVLOOP_HOME with N ledger rows (default 100,000 over 30 days) plus eval
runs, runs the TUI headless (no endpoint), and times each key from the press until the screen
has redrawn with its data (every worker finished). Prints a table per screen and key.

    .venv/bin/python scripts/bench_tui.py [--rows 100000] [--repeat 30] [--size 120x40]
    .venv/bin/python scripts/bench_tui.py --screenshot docs/dashboard.svg   # README picture
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from textual import events  # noqa: E402
from textual.worker import WorkerCancelled, WorkerFailed  # noqa: E402

from devloop.config import Settings, load_profile  # noqa: E402
from devloop.store.reports import CallFilter  # noqa: E402
from devloop.tui.app import DevloopApp  # noqa: E402
from tests.tui.seed import seed_calls, seed_ladder  # noqa: E402

BUDGET_MS = 100.0
DATA = ROOT / "tests" / "tui" / "data"
PROFILE = """
name: bench
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:    {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9", fallback: embedded}
  embedded: {backend: embedded, model: smollm2-135m}
  shared:   {backend: openai, base_url: "http://127.0.0.1:9/v1", model: Qwen/Qwen2.5-Coder-7B-Instruct}
  frontier: {backend: litellm, model: anthropic/claude-sonnet-4-5}
routes:
  - {tier: local}
fallbacks: [local, embedded]
budgets:
  - {scope: tier:frontier, usd: 5.00, period: day}
  - {scope: global, usd: 20.00, period: week}
"""


def make_home(folder: Path, rows: int, now: float) -> tuple[Settings, Any, Path]:
    home = folder / "home"
    home.mkdir(parents=True)
    evalsets = folder / "evalsets"
    shutil.copytree(DATA, evalsets)
    (evalsets / "broken.yaml").unlink()
    started = time.perf_counter()
    seed_calls(home / "devloop.db", rows, now=now, days=30)
    seed_ladder(home / "devloop.db", evalsets / "commit-message.yaml", now=now)
    print(f"seeded {rows:,} calls in {time.perf_counter() - started:.1f}s "
          f"({(home / 'devloop.db').stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    profile_path = folder / "bench.yaml"
    profile_path.write_text(PROFILE)
    return Settings(home=home, port=8790, profile=str(profile_path)), \
        load_profile(profile_path), evalsets


async def settled(pilot: Any) -> None:
    """Then until the screen settles: every queued message handled and every worker done
    (a handler may start a worker, whose result posts more messages). No idle-time sleeps:
    Pilot.press/pause wait for CPU idleness in 20 ms steps, which would swamp the figures."""
    app = pilot.app

    def busy() -> list[Any]:  # the hosted endpoint is a worker that runs until quit
        return [w for w in app.workers if not w.is_finished and w.group != "endpoint"]

    while True:
        await pilot._wait_for_screen()  # noqa: SLF001 - waits for queued messages only
        if not busy():
            await pilot._wait_for_screen()  # noqa: SLF001
            if not busy():
                return
        else:
            for worker in busy():
                with contextlib.suppress(WorkerCancelled, WorkerFailed):  # superseded reads
                    await worker.wait()


def key_event(key: str) -> events.Key:
    """The event a terminal sends for ``key`` (as Pilot builds it, without its idle waits)."""
    char = {"slash": "/", "enter": "\r", "down": None, "ctrl+u": None}.get(key, key)
    return events.Key(key, char if char is None or len(char) == 1 else None)


async def press(app: DevloopApp, keys: list[str]) -> None:
    """Keys as fast as a typist sends them: straight to the driver, one after another."""
    assert app._driver is not None  # noqa: SLF001
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app._driver.send_message(event)  # noqa: SLF001


@dataclass(frozen=True)
class Step:
    screen: str  # its mode, capitalised
    what: str
    keys: list[str]  # pressed while timing
    before: Callable[[DevloopApp], Any] | None = None
    prep: list[str] = field(default_factory=list)  # pressed before timing
    loads: bool = True  # the key fetches data: wait for it to reach the screen
    after: float = 0.0  # seconds to let a debounce timer fire before the next press


def mark_stale(app: DevloopApp) -> None:
    """As after new calls: the next visit re-reads the ledger."""
    for screen in app._screens:  # noqa: SLF001 - the bench pokes at the app on purpose
        screen.stale = True


def forget_filter(app: DevloopApp) -> None:
    """So that typing the same filter again is a change (and a query), as the first time."""
    calls = next(s for s in app._screens if s.MODE == "calls")  # noqa: SLF001
    calls.filter = CallFilter(words=["\0"])  # type: ignore[attr-defined]


FILTER = ["slash", "ctrl+u"]  # focus the filter and empty it
STEPS: list[Step] = [
    Step("Dashboard", "open (1)", ["1"], mark_stale),
    Step("Dashboard", "refresh (r)", ["r"]),
    Step("Calls", "open (2)", ["2"], mark_stale),
    Step("Calls", "next page (n)", ["n"]),
    Step("Calls", "prev page (p)", ["p"]),
    Step("Calls", "cursor down (detail)", ["down"]),
    Step("Calls", "type in the filter", ["x"], prep=FILTER, loads=False, after=0.35),
    Step("Calls", "enter: tier:frontier", ["enter"], forget_filter,
         [*FILTER, *"tier:frontier"]),
    Step("Calls", "enter: text 'commit'", ["enter"], forget_filter, [*FILTER, *"commit"]),
    Step("Calls", "enter: empty filter", ["enter"], forget_filter, FILTER),
    Step("Prompts", "open (3)", ["3"], mark_stale),
    Step("Evals", "open (4)", ["4"], mark_stale),
    Step("Spend", "open (5)", ["5"], mark_stale),
    Step("Spend", "window 7/14/30/90 d (w)", ["w"]),
    Step("Backends", "open (6)", ["6"], mark_stale),
]


async def bench(settings: Settings, profile: Any, evalsets: Path, now: float, repeat: int,
                size: tuple[int, int]) -> list[tuple[str, str, list[float]]]:
    app = DevloopApp(settings, profile, serve=False, live=False, auto_check=False,
                     evalsets_dir=evalsets, clock=lambda: now)
    results: list[tuple[str, str, list[float]]] = []
    async with app.run_test(size=size) as pilot:
        await settled(pilot)
        for key in "234561":  # first visits (compose) are not what a user repeats
            await pilot.press(key)
            await settled(pilot)
        for step in STEPS:
            mode = step.screen.lower()
            times = []
            for _ in range(repeat):
                if step.keys[0] in "123456" and app.current_mode == mode:
                    await press(app, ["1" if step.keys[0] != "1" else "2"])  # leave, come back
                    await asyncio.sleep(0.05)
                    await settled(pilot)
                for key in step.prep:
                    await press(app, [key])
                    await settled(pilot)
                if step.before is not None:
                    step.before(app)
                target = next(s for s in app._screens if mode == s.MODE)  # noqa: SLF001
                loads = target.loads
                started = time.perf_counter()
                await press(app, step.keys)
                while step.loads and target.loads == loads:  # the data reached the screen
                    if time.perf_counter() - started > 10:
                        raise RuntimeError(f"{step.screen} {step.what}: no data after 10 s")
                    await asyncio.sleep(0.0005)
                await settled(pilot)
                times.append((time.perf_counter() - started) * 1000)
                if step.after:
                    await asyncio.sleep(step.after)
                    await settled(pilot)
            results.append((step.screen, step.what, times))
    return results


def report(results: list[tuple[str, str, list[float]]], rows: int, size: tuple[int, int]) -> bool:
    print(f"\nKey-press latency with {rows:,} ledger rows at {size[0]}x{size[1]} "
          f"(press -> data on screen; ok: p95 within {BUDGET_MS:.0f} ms)\n")
    header = f"{'screen':<10} {'key':<24} {'n':>3} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  ok"
    print(header)
    print("-" * len(header))
    all_ok = True
    for screen, what, times in results:
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        median = statistics.median(ordered)
        ok = p95 <= BUDGET_MS
        all_ok &= ok
        print(f"{screen:<10} {what:<24} {len(times):>3} {median:>10.1f} {p95:>8.1f} "
              f"{max(ordered):>8.1f}  {'yes' if ok else 'NO'}")
    return all_ok


async def screenshot(settings: Settings, profile: Any, evalsets: Path, path: Path) -> None:
    """The dashboard as a user sees it: the endpoint hosted, the seeded history, and a few
    real calls through it (Ollama is not running here, so the embedded model answers)."""
    import httpx

    settings = settings.model_copy(update={"port": _port(8790)})
    app = DevloopApp(settings, profile, serve=True, live=True, auto_check=False,
                     evalsets_dir=evalsets)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.endpoint is None or app.endpoint.state != "serving":
            if app.endpoint is not None and app.endpoint.state == "failed":
                raise RuntimeError(app.endpoint.detail)
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{settings.port}/v1/chat/completions"
        async with httpx.AsyncClient(timeout=120) as client:
            for feature, text in (("commit-msg", "Write a commit message for: fix typo"),
                                  ("continue", "What does git rebase do?"),
                                  ("continue", "What does git rebase do?")):  # a cache hit
                await client.post(url, headers={"X-Devloop-Feature": feature}, json={
                    "model": "auto", "temperature": 0, "max_tokens": 24,
                    "messages": [{"role": "user", "content": text}]})
        await asyncio.sleep(1.0)  # the debounced refresh of the figures
        await settled(pilot)
        path.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=path.name, path=str(path.parent))
        await app.action_quit()
    print(f"wrote {path}", file=sys.stderr)


def _port(preferred: int) -> int:
    """``preferred`` when free (the README shows the default port), else any free port."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--size", default="120x40", help="terminal size, e.g. 80x24")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="write an SVG of the dashboard (seeded with --rows) and exit")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="devloop-bench-tui-") as tmp:
        os.chdir(tmp)  # eval set paths show relative to the working folder, as in a project
        settings, profile, evalsets = make_home(Path(tmp), args.rows, now)
        if args.screenshot is not None:
            target = args.screenshot if args.screenshot.is_absolute() else \
                Path(os.environ.get("PWD", ROOT)) / args.screenshot
            asyncio.run(screenshot(settings, profile, Path("evalsets"), target))
            return 0
        results = asyncio.run(bench(settings, profile, Path("evalsets"), now, args.repeat,
                                    (width, height)))
    if os.environ.get("BENCH_RAW"):
        for screen, what, times in results:
            print(screen, what, " ".join(f"{t:.0f}" for t in times), file=sys.stderr)
    return 0 if report(results, args.rows, (width, height)) else 1


if __name__ == "__main__":
    sys.exit(main())
