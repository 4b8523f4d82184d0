"""CPU per request of devloop's app against the minimal passthrough, driven in process.

The ASGI app is called directly (no client sockets, no HTTP parsing: those cost the same
in every Python gateway); the upstream stub runs in its own process. CPU time of this
process (every thread: the event loop, aiohttp, the ledger writer) is divided by the
requests served, which stays meaningful on a busy machine where latency does not.

    .venv/bin/python scripts/bench_inprocess.py [--requests 3000] [--profile-out FILE]
        [--breakdown]

With --profile-out, devloop's sequential run is also profiled with pyinstrument (from
.venv-bench) and its text report written there; --breakdown times devloop's own steps
one by one (what the CPU per request is made of); --writer inline|off are what-if runs
that commit the ledger on the event loop, or skip it, to show what the hand-off costs.
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
from benchlib import BENCH_VENV, pcts  # noqa: E402
from gateway_targets import body, devloop_profile, start_stub  # noqa: E402

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
    from minimal_passthrough import create_app as minimal_app

    from devloop.config import Settings, load_profile
    from devloop.server.app import create_app

    with tempfile.TemporaryDirectory(prefix="devloop-inproc-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work, 0.0)
        try:
            profile_file = work / "bench.yaml"
            profile_file.write_text(devloop_profile(stub.port))
            settings = Settings(home=work / "home")
            devloop = create_app(settings, load_profile(str(profile_file)), probe=False)
            minimal = minimal_app(f"http://127.0.0.1:{stub.port}/v1")
            rows = []
            async with devloop.router.lifespan_context(devloop):
                if args.writer != "thread":
                    swap_writer(devloop.state.gateway, args.writer)
                for mode in args.modes:
                    stream = mode == "stream"
                    for c in args.concurrency:
                        for name, app, model in (("minimal", minimal, "stub-model"),
                                                 ("devloop", devloop, "auto")):
                            r = await measure(app, model, args.requests, c, stream)
                            rows.append((mode, c, name, r))
                if args.profile_out:
                    await profile(devloop, args)
                if args.breakdown:
                    breakdown(devloop.state.gateway)
        finally:
            stub.proc.stop()  # type: ignore[union-attr]
    print("| mode | concurrency | app | CPU µs/req | p50 ms | p95 ms | rps |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for mode, c, name, r in rows:
        print(f"| {mode} | {c} | {name} | {r['cpu_us']:.0f} | {r['p50']:.3f} | {r['p95']:.3f} "
              f"| {r['rps']:.0f} |")


def swap_writer(gw: Any, how: str) -> None:
    """What-if runs (never what devloop does): ``off`` skips the ledger and cache writes;
    ``inline`` commits them on the event loop instead of handing them to the writer thread."""
    from devloop.store.db import connect

    conn = connect(gw.settings.db_path)

    async def inline(fn: Any) -> Any:
        conn.execute("BEGIN IMMEDIATE")
        try:
            value = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return value

    async def off(fn: Any) -> None:
        return None

    gw.writer.run = inline if how == "inline" else off


def breakdown(gw: Any) -> None:
    """What each of devloop's own steps costs, timed alone (microseconds per call)."""
    import uuid

    import orjson

    from devloop.cache import cache_key, encode_completion
    from devloop.gateway import CallResult
    from devloop.routing.policy import PolicyInput, classify_complexity, decide
    from devloop.server.http import result_headers
    from devloop.server.openai_api import chat_body
    from devloop.tokens import estimate_tokens
    from devloop.types import ChatRequest, Completion, RequestContext, Usage

    raw = body("auto", False, "breakdown")
    data = orjson.loads(raw)
    req = ChatRequest.model_validate(data)
    ctx = RequestContext(request_id=uuid.uuid4().hex, endpoint="chat", protocol="openai")
    prep = gw.prepare(req, ctx)
    backend = gw.router.backends["shared"]
    done = Completion("Hello from the stub.", "stub-model", "stop", Usage(12, 5))
    rec = gw.meter.record(prep, "shared", "openai", "stub-model", "r", "miss", done.usage, 0.0, 0.001)
    result = CallResult("x", prep.decision, "shared", "openai", "stub-model", "r", "miss", done,
                        None, 0.0, 0.001, 0.001, 0.5)
    prompt = req.prompt_text()
    steps = {
        "parse JSON body (orjson)": lambda: orjson.loads(raw),
        "validate ChatRequest (pydantic)": lambda: ChatRequest.model_validate(data),
        "request id (uuid4)": lambda: uuid.uuid4().hex,
        "Gateway.prepare (route + cache key)": lambda: gw.prepare(req, ctx),
        "  routing.decide": lambda: decide(PolicyInput("chat", "auto", prompt,
                                                       estimate_tokens(prompt)), gw.profile,
                                           gw.router.state()),
        "    classify_complexity (regexes)": lambda: classify_complexity(prompt, 20),
        "  cache_key (dump + sort + sha256)": lambda: cache_key("default", "chat", "shared",
                                                                "stub-model", req, 32),
        "cache lookup, miss (SQLite read)": lambda: gw.cache.get(uuid.uuid4().hex),
        "upstream body (model_dump + orjson)": lambda: orjson.dumps(
            backend._body(req, "stub-model", False)),
        "cache row encode": lambda: encode_completion(done),
        "ledger CallRecord": lambda: gw.meter.record(prep, "shared", "openai", "stub-model", "r",
                                                    "miss", done.usage, 0.0, 0.001),
        "metrics (Meter.observe)": lambda: gw.meter.observe(rec),
        "response body + headers": lambda: (orjson.dumps(chat_body("x", done)),
                                            result_headers(result)),
    }
    print("\n| step (devloop's own work per request) | µs |")
    print("|---|---:|")
    for name, fn in steps.items():
        n = 5000
        start = time.perf_counter()
        for _ in range(n):
            fn()
        print(f"| {name} | {(time.perf_counter() - start) / n * 1e6:.1f} |")


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
    ap.add_argument("--breakdown", action="store_true", help="time devloop's steps one by one")
    ap.add_argument("--writer", choices=["thread", "inline", "off"], default="thread",
                    help="what-if: ledger commits on the loop (inline) or not at all (off)")
    args = ap.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.modes = args.modes.split(",")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
