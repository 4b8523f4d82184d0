"""Cache hits against uncached calls, through a real `devloop serve` on the embedded tier.

    .venv/bin/python scripts/bench_cache.py            # about a minute
    .venv/bin/python scripts/bench_cache.py --quick

Both kinds are measured in the same run against the same server: uncached calls send a new
prompt every time (temperature 0, so they are cacheable but miss), hits repeat one prompt.
Latency is client-side over loopback HTTP; requests per second at concurrency 1 and 16.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.helpers import start_server, write_profile  # noqa: E402

PROFILE = """
name: bench-cache
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded}
cache: {enabled: true, ttl: 1h, max_temperature: 0.0}
"""
COUNTER = itertools.count()


def body(prompt: str) -> dict[str, object]:
    return {"model": "auto", "temperature": 0.0, "max_tokens": 16,
            "messages": [{"role": "user", "content": prompt}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(http: httpx.AsyncClient, n: int, concurrency: int, hit: bool
              ) -> tuple[list[float], float]:
    lat: list[float] = []
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            prompt = "Name a colour." if hit else f"Name colour number {next(COUNTER)}."
            t = time.perf_counter()
            resp = await http.post("/v1/chat/completions", json=body(prompt))
            lat.append((time.perf_counter() - t) * 1000)
            want = "hit" if hit else "miss"
            if resp.status_code != 200 or resp.headers["x-devloop-cache"] != want:
                raise SystemExit(f"unexpected {resp.status_code} {resp.headers} {resp.text}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, n / (time.perf_counter() - start)


async def main(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    server = start_server(write_profile(folder / "p.yaml", PROFILE), folder / "home")
    plan = {("uncached", 1): 10 if quick else 30, ("uncached", 16): 16 if quick else 48,
            ("hit", 1): 300 if quick else 1000, ("hit", 16): 1000 if quick else 4000}
    try:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300,
                                     limits=limits) as http:
            await run(http, 2, 1, hit=False)  # loads the model
            await http.post("/v1/chat/completions", json=body("Name a colour."))  # fills
            print(f"devloop serve, embedded SmolLM2-135M, max_tokens 16, loopback HTTP "
                  f"({os.cpu_count()} CPUs)")
            print(f"{'kind':<10}{'concurrency':>12}{'requests':>10}{'p50 ms':>10}{'p95 ms':>10}"
                  f"{'req/s':>10}")
            results = {}
            for (kind, concurrency), n in plan.items():
                lat, rps = await run(http, n, concurrency, hit=kind == "hit")
                results[kind, concurrency] = (pct(lat, .5), rps)
                print(f"{kind:<10}{concurrency:>12}{n:>10}{pct(lat, .5):>10.2f}"
                      f"{pct(lat, .95):>10.2f}{rps:>10,.1f}")
            for concurrency in (1, 16):
                miss_p50, miss_rps = results["uncached", concurrency]
                hit_p50, hit_rps = results["hit", concurrency]
                print(f"at concurrency {concurrency}: a hit is {miss_p50 / hit_p50:,.0f}x faster "
                      f"(p50) and serves {hit_rps / miss_rps:,.0f}x the requests per second")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
