"""Fairness of a team devloop: key B's latency alone, and while key A keeps a burst in flight.

Starts scripts/fake_upstream.py (a GPU stand-in: --capacity requests at a time, --delay
seconds each) and, for each scenario, a `devloop serve --team` in front of it with keys A
and B, then prints B's p50/p95 alone and under A's burst:

  fair        the default fair queue (cap = upstream capacity, one slot kept back per key)
  no-reserve  the fair queue without the kept-back slot (pure round robin)
  no-queue    no effective cap (10000): the upstream's own first-come queue decides

    .venv/bin/python scripts/bench_team.py [--burst 50] [--samples 40] [--delay 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devloop.store.db import open_db  # noqa: E402
from devloop.store.keys import create_key  # noqa: E402

SCENARIOS = {
    "fair": {},
    "no-reserve": {"DEVLOOP_TEAM_RESERVED_SLOTS": "0"},
    "no-queue": {"DEVLOOP_TEAM_MAX_IN_FLIGHT": "10000"},
}
BODY = {"model": "shared", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi."}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up in {timeout}s")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def calls(client: httpx.AsyncClient, key: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = await client.post("/v1/chat/completions", json=BODY,
                                 headers={"Authorization": f"Bearer {key}"})
        resp.raise_for_status()
        out.append(time.perf_counter() - start)
    return out


async def measure(base_url: str, keys: dict[str, str], burst: int, samples: int,
                  settle: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=burst + 10, max_keepalive_connections=burst + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        await calls(client, keys["B"], 2)
        alone = await calls(client, keys["B"], samples)
        stop, done = asyncio.Event(), [0]

        async def heavy() -> None:
            while not stop.is_set():
                await calls(client, keys["A"], 1)
                done[0] += 1

        workers = [asyncio.create_task(heavy()) for _ in range(burst)]
        await asyncio.sleep(settle)
        started = time.perf_counter()
        loaded = await calls(client, keys["B"], samples)
        elapsed = time.perf_counter() - started
        a_done = done[0]
        stop.set()
        await asyncio.gather(*workers)
    return {"alone_p50": statistics.median(alone), "alone_p95": pct(alone, 0.95),
            "loaded_p50": statistics.median(loaded), "loaded_p95": pct(loaded, 0.95),
            "a_per_s": a_done / (elapsed + settle)}


def run_scenario(name: str, upstream: str, args: argparse.Namespace) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"bench-team-{name}-"))
    try:
        db = open_db(home / "devloop.db")
        keys = {k: create_key(db, f"key-{k}") for k in ("A", "B")}
        db.close()
        profile = home / "team.yaml"
        profile.write_text(f"""
name: bench-team
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "{upstream}/v1", model: fake-gpu-model}}
routes:
  - {{tier: shared}}
cache: {{enabled: false}}
""")
        port = free_port()
        env = {**os.environ, "DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "DEVLOOP_TEAM_MAX_IN_FLIGHT": str(args.capacity), **SCENARIOS[name]}
        server = subprocess.Popen(
            [sys.executable, "-m", "devloop", "serve", "--team", "--port", str(port),
             "--profile", str(profile)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"http://127.0.0.1:{port}/health", server)
            return asyncio.run(measure(f"http://127.0.0.1:{port}", keys, args.burst,
                                       args.samples, 4 * args.delay))
        finally:
            server.terminate()
            server.wait(15)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=50, help="key A's requests in flight")
    parser.add_argument("--samples", type=int, default=40, help="key B's sequential calls")
    parser.add_argument("--delay", type=float, default=0.25, help="upstream seconds per call")
    parser.add_argument("--capacity", type=int, default=4, help="upstream calls at once")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    port = free_port()
    upstream_proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", str(port),
         "--delay", str(args.delay), "--capacity", str(args.capacity)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    upstream = f"http://127.0.0.1:{port}"
    try:
        wait_up(upstream + "/stats", upstream_proc)
        print(f"upstream: {args.capacity} at a time, {args.delay * 1000:.0f} ms each; key A keeps "
              f"{args.burst} in flight; key B sends {args.samples} calls one after another")
        print(f"{'scenario':<12}{'B alone p50':>12}{'p95':>8}{'B loaded p50':>14}{'p95':>8}"
              f"{'p95 ratio':>11}{'A calls/s':>11}")
        for name in args.scenarios.split(","):
            r = run_scenario(name, upstream, args)
            print(f"{name:<12}{r['alone_p50'] * 1000:>10.0f}ms{r['alone_p95'] * 1000:>6.0f}ms"
                  f"{r['loaded_p50'] * 1000:>12.0f}ms{r['loaded_p95'] * 1000:>6.0f}ms"
                  f"{r['loaded_p95'] / r['alone_p95']:>10.2f}x{r['a_per_s']:>11.1f}", flush=True)
    finally:
        upstream_proc.terminate()
        upstream_proc.wait(10)


if __name__ == "__main__":
    main()
