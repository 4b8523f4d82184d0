"""Priority classes on the shared tier: interactive p95 alone vs. with the tier saturated by
background work.

A scripted loopback upstream plays a shared GPU box that serves N requests at a time (each
takes --service-ms); devloop's shared tier points at it. Interactive requests come one after
another; background load is --workers clients sending ``X-Devloop-Priority: background``
plus a Batch API file of --lines lines (batch lines are background). The contrast run sends
the same load as interactive (no priority), which is what one shared queue did before.

    PYTHONPATH=. .venv/bin/python scripts/bench_priority.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from benchlib import free_port, pcts  # noqa: E402


def upstream(port: int, at_once: int, service_ms: float) -> None:
    async def main() -> None:
        slots = asyncio.Semaphore(at_once)

        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            async with slots:
                await asyncio.sleep(service_ms / 1000)
            return web.json_response({
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}})

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": "gpu", "object": "model"}]})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


PROFILE = """
name: bench-priority
production_model: anthropic/claude-sonnet-4-6
tiers:
  shared: {{backend: openai, base_url: "http://127.0.0.1:{port}/v1", model: gpu}}
routes: [{{tier: shared}}]
cache: {{enabled: false}}
priority: {{background_concurrency: {{shared: {cap}}}}}
"""


def body(i: int) -> dict[str, Any]:
    return {"model": "shared", "max_tokens": 4,
            "messages": [{"role": "user", "content": f"request {i}"}]}


async def interactive(base: str, n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(n):
            t = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body(i))
            r.raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.02)
    return out


async def background(base: str, workers: int, stop: asyncio.Event, header: bool) -> int:
    done = 0
    headers = {"X-Devloop-Priority": "background"} if header else {}

    async def worker(w: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            i = 0
            while not stop.is_set():
                r = await client.post("/v1/chat/completions", json=body(w * 100000 + i),
                                      headers=headers)
                r.raise_for_status()
                done += 1
                i += 1

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done


async def submit_batch(base: str, lines: int) -> str:
    data = "".join(json.dumps({"custom_id": f"l{i}", "method": "POST",
                               "url": "/v1/chat/completions", "body": body(10**7 + i)}) + "\n"
                   for i in range(lines)).encode()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        f = (await client.post("/v1/files", files={"file": ("b.jsonl", data)},
                               data={"purpose": "batch"})).json()
        b = (await client.post("/v1/batches", json={
            "input_file_id": f["id"], "endpoint": "/v1/chat/completions",
            "completion_window": "24h"})).json()
        return str(b["id"])


async def scenario(base: str, n: int, workers: int, lines: int, header: bool
                   ) -> dict[str, Any]:
    stop = asyncio.Event()
    bg = None
    if workers:
        if lines:
            await submit_batch(base, lines)
        bg = asyncio.create_task(background(base, workers, stop, header))
        await asyncio.sleep(1.0)  # let the background load fill the tier
    lat = await interactive(base, n)
    stop.set()
    done = await bg if bg else 0
    return {**{k: round(v, 1) for k, v in pcts(lat).items()}, "background_done": done}


def serve(port: int, up_port: int, cap: int, home: Path) -> subprocess.Popen[bytes]:
    prof = home / "p.yaml"
    prof.write_text(PROFILE.format(port=up_port, cap=cap))
    env = {**os.environ, "DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "devloop", "serve", "--port", str(port),
                             "--profile", str(prof)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("devloop did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--at-once", type=int, default=4, help="upstream serves N at a time")
    ap.add_argument("--service-ms", type=float, default=50.0)
    ap.add_argument("--requests", type=int, default=80, help="interactive requests")
    ap.add_argument("--workers", type=int, default=12, help="background clients")
    ap.add_argument("--lines", type=int, default=400, help="Batch API lines (background)")
    ap.add_argument("--cap", type=int, default=2, help="background concurrency on shared")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    up_port = free_port()
    threading.Thread(target=upstream, args=(up_port, args.at_once, args.service_ms),
                     daemon=True).start()
    time.sleep(0.5)
    results: dict[str, Any] = {"at_once": args.at_once, "service_ms": args.service_ms,
                               "workers": args.workers, "lines": args.lines, "cap": args.cap}
    runs = [("alone", 0, 0, True), ("background, priority", args.workers, args.lines, True),
            ("same load, no priority", args.workers, 0, False)]
    for name, workers, lines, header in runs:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            proc = serve(port, up_port, args.cap, Path(tmp))
            try:
                results[name] = asyncio.run(scenario(f"http://127.0.0.1:{port}", args.requests,
                                                     workers, lines, header))
            finally:
                proc.terminate()
                proc.wait(10)
    alone = results["alone"]["p95"]
    results["p95_ratio_with_priority"] = round(results["background, priority"]["p95"] / alone, 2)
    results["p95_ratio_without_priority"] = round(
        results["same load, no priority"]["p95"] / alone, 2)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, _, _, _ in runs:
        r = results[name]
        print(f"{name:<26} p50 {r['p50']:>7.1f} ms  p95 {r['p95']:>7.1f} ms  p99 "
              f"{r['p99']:>7.1f} ms  background done {r['background_done']}")
    print(f"p95 ratio with priority: {results['p95_ratio_with_priority']}x (goal <= 1.5x); "
          f"without: {results['p95_ratio_without_priority']}x")


if __name__ == "__main__":
    main()
