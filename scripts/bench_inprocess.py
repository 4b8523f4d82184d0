"""CPU per request of devloop's app against the minimal passthrough, driven in process.

The ASGI app is called directly (no client sockets, no HTTP parsing: those cost the same
in every Python gateway); the upstream stub runs in its own process. CPU time of this
process (every thread: the event loop, aiohttp, the ledger writer) is divided by the
requests served, which stays meaningful on a busy machine where latency does not.

    .venv/bin/python scripts/bench_inprocess.py [--requests 3000] [--profile-out FILE]

With --profile-out, devloop's sequential run is also profiled with pyinstrument (from
.venv-bench) and its text report written there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from bench_gateway import body, devloop_profile, start_stub  # noqa: E402
from benchlib import BENCH_VENV, ROOT, pcts  # noqa: E402

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: App, payload: bytes, stream: bool) -> tuple[int, float, float]:
    """One POST /v1/chat/completions -> (status, ms to first content piece, ms total)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8790), "state": {},
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode())],
    }
    done = asyncio.Event()
    sent = False
    status = 0
    first = 0.0
    start = time.perf_counter()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, first
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            if not first and (not stream or b'"content":"' in message.get("body", b"")):
                first = time.perf_counter()
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    end = time.perf_counter()
    return status, ((first or end) - start) * 1000, (end - start) * 1000


async def measure(app: App, model: str, n: int, concurrency: int, stream: bool
                  ) -> dict[str, float]:
    for _ in range(100):
        await call(app, body(model, stream, "warm"), stream)
    lat: list[float] = []
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, ttft, total = await call(app, body(model, stream, "inproc"), stream)
            assert status == 200, status
            lat.append(ttft if stream else total)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {**pcts(lat), "cpu_us": cpu / n * 1e6, "rps": n / wall}


async def run(args: argparse.Namespace) -> None:
    from devloop.config import Profile, Settings, load_yaml  # noqa: F401
    from devloop.server.app import create_app
    from minimal_passthrough import create_app as minimal_app

    with tempfile.TemporaryDirectory(prefix="devloop-inproc-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work, 0.0)
        try:
            profile_file = work / "bench.yaml"
            profile_file.write_text(devloop_profile(stub.port))
            from devloop.config import load_profile

            settings = Settings(home=work / "home")
            devloop = create_app(settings, load_profile(str(profile_file)), probe=False)
            minimal = minimal_app(f"http://127.0.0.1:{stub.port}/v1")
            rows = []
            async with devloop.router.lifespan_context(devloop):
                for mode in args.modes:
                    stream = mode == "stream"
                    for c in args.concurrency:
                        for name, app, model in (("minimal", minimal, "stub-model"),
                                                 ("devloop", devloop, "auto")):
                            r = await measure(app, model, args.requests, c, stream)
                            rows.append((mode, c, name, r))
                if args.profile_out:
                    await profile(devloop, args)
        finally:
            stub.proc.stop()  # type: ignore[union-attr]
    print("| mode | concurrency | app | CPU µs/req | p50 ms | p95 ms | rps |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for mode, c, name, r in rows:
        print(f"| {mode} | {c} | {name} | {r['cpu_us']:.0f} | {r['p50']:.3f} | {r['p95']:.3f} "
              f"| {r['rps']:.0f} |")


async def profile(app: App, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(next((BENCH_VENV / "lib").glob("python3*/site-packages"))))
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0001, async_mode="disabled")
    prof.start()
    for _ in range(args.requests):
        await call(app, body("auto", False, "prof"), False)
    prof.stop()
    Path(args.profile_out).write_text(prof.output_text(unicode=False, color=False,
                                                       show_all=False))
    print(f"profile: {args.profile_out}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", default="1,10")
    ap.add_argument("--modes", default="plain,stream")
    ap.add_argument("--profile-out", default=None)
    args = ap.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.modes = args.modes.split(",")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
    _ = ROOT
