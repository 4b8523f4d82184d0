"""Ledger throughput and the latency a ledger write adds to a request, in one run.

    .venv/bin/python scripts/bench_ledger.py            # about 30 s
    .venv/bin/python scripts/bench_ledger.py --quick

1. Rows per second through the one writer thread (group commit), with 1, 32 and 256 writers
   awaiting their own durable commit at once.
2. Per-request latency of the gateway's fastest path (a cache hit: route, cache lookup, ledger
   row) with the ledger write, against the same gateway with the write switched off (the
   baseline), at concurrency 1 and 32. The difference is what the ledger adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from devloop.config import Profile, Settings  # noqa: E402
from devloop.gateway import Gateway  # noqa: E402
from devloop.store.calls import CallRecord  # noqa: E402
from devloop.store.writer import DbWriter  # noqa: E402
from devloop.types import ChatRequest, RequestContext  # noqa: E402

PROFILE = {
    "name": "bench-ledger", "production_model": "anthropic/claude-sonnet-4-5",
    "tiers": {"embedded": {"backend": "embedded", "model": "smollm2-135m"}},
    "routes": [{"tier": "embedded"}],
    "cache": {"enabled": True, "ttl": 3600, "max_temperature": 0.0},
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record(i: int) -> CallRecord:
    return CallRecord(request_id=uuid.uuid4().hex, endpoint="chat", tier="local",
                      backend="ollama", model="qwen2.5-coder:1.5b", route_reason="bench",
                      prompt_tokens=100 + i % 50, completion_tokens=20, cost_usd=0.0,
                      counterfactual_usd=0.0006, saved_usd=0.0006, prefix_hash="abc")


async def rows_per_second(path: Path, total: int, writers: int) -> float:
    writer = DbWriter(path)
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await asyncio.wrap_future(writer.insert("calls", record(i).row()))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    writer.close()
    return total / elapsed


async def request_latency(gw: Gateway, n: int, concurrency: int, warm: bool = False
                          ) -> list[float]:
    req = ChatRequest.model_validate({"model": "auto", "temperature": 0.0, "max_tokens": 8,
                                      "messages": [{"role": "user", "content": "Say hi."}]})
    lat: list[float] = []
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            ctx = RequestContext(uuid.uuid4().hex, "chat", "openai")
            t = time.perf_counter()
            result = await gw.call(req, ctx)
            lat.append((time.perf_counter() - t) * 1000)
            assert warm or result.cache == "hit"

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


async def main(quick: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    total = 5000 if quick else 20000
    print(f"1. ledger rows per second ({total} rows each, WAL, synchronous=NORMAL)")
    print(f"   {'writers awaiting at once':<26}{'rows/s':>10}")
    for writers in (1, 32, 256):
        rps = await rows_per_second(folder / f"rows-{writers}.db", total, writers)
        print(f"   {writers:<26}{rps:>10,.0f}")

    gw = Gateway(Settings(home=folder / "gw"), Profile.model_validate(PROFILE))
    await gw.start(probe=False)
    real_write = gw.meter.write
    n = 1000 if quick else 4000
    try:
        await request_latency(gw, 1, 1, warm=True)  # loads the model, fills the cache entry

        async def no_write(rec: CallRecord, *rest: object) -> None:
            gw.meter.observe(rec)

        print(f"\n2. latency of a cache-hit request in process ({n} requests per cell, "
              "interleaved rounds)")
        print(f"   {'concurrency':<13}{'ledger':<9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
              f"{'req/s':>9}")
        for concurrency in (1, 32):
            cells: dict[str, list[float]] = {"off": [], "on": []}
            seconds = {"off": 0.0, "on": 0.0}
            for _ in range(4):  # alternate so drift hits both alike
                for mode in ("off", "on"):
                    gw.meter.write = no_write if mode == "off" else real_write  # type: ignore[method-assign]
                    t = time.perf_counter()
                    cells[mode] += await request_latency(gw, n // 4, concurrency)
                    seconds[mode] += time.perf_counter() - t
            for mode in ("off", "on"):
                lat = cells[mode]
                label = "baseline" if mode == "off" else "written"
                print(f"   {concurrency:<13}{label:<9}{pct(lat, .5):>9.3f}{pct(lat, .95):>9.3f}"
                      f"{pct(lat, .99):>9.3f}{len(lat) / seconds[mode]:>9,.0f}")
            added = statistics.median(cells["on"]) - statistics.median(cells["off"])
            print(f"   {'':<13}{'added':<9}{added:>9.3f}  (median, ms per request)")
    finally:
        gw.meter.write = real_write  # type: ignore[method-assign]
        await gw.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
