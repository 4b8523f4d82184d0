"""devloop against other gateways in front of the same fast upstream stub (loopback only).

Targets, each its own process: the stub called directly; devloop (`devloop serve`, a profile
whose one tier points at the stub, routing by `model: auto`, cache and ledger on); LiteLLM
proxy (`.venv-bench`, litellm[proxy]==1.100.0); Portkey's open-source gateway (`.bench`,
@portkey-ai/gateway pinned); and a minimal Starlette + aiohttp passthrough, the floor for
Python. Requests are interleaved target by target (sequential) or round by round (at
concurrency), every body unique so devloop's cache misses and writes on every call.

    .venv/bin/python scripts/bench_gateway.py                # everything (about 3 minutes)
    .venv/bin/python scripts/bench_gateway.py --quick        # a smaller run
    .venv/bin/python scripts/bench_gateway.py --only devloop,minimal --sections compare

Sections: compare (latency added over direct), cache (cache-hit rps and latency), memory
(devloop's resident memory over 10,000 requests), ledger (rows per second through the
gateway's write path, in process). Results go to .bench/results/*.json too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import (  # noqa: E402
    ROOT,
    dumps,
    machine_info,
    pcts,
    rss_mb,
)
from gateway_targets import (  # noqa: E402
    ALL,
    RESULTS,
    Target,
    added_table,
    baseline_tree,
    body,
    concurrent,
    paced,
    print_table,
    sequential,
    start_devloop,
    start_litellm,
    start_minimal,
    start_portkey,
    start_stub,
)


# -- sections -----------------------------------------------------------------------------------
async def section_compare(args: argparse.Namespace, work: Path, stub: Target) -> dict:
    names = [n for n in ALL if n in args.only]
    starters = {"devloop": start_devloop, "litellm": start_litellm, "portkey": start_portkey,
                "minimal": start_minimal}
    targets = [stub]
    for name in names:
        if name != "direct":
            targets.append(await starters[name](work, stub.port))
            print(f"  started {name} on port {targets[-1].port}", file=sys.stderr)
    if args.baseline:  # the earlier devloop, interleaved with the others on the same load
        targets.append(await start_devloop(work, stub.port, "baseline",
                                           baseline_tree(args.baseline)))
        print(f"  started baseline ({args.baseline}) on port {targets[-1].port}",
              file=sys.stderr)
    results: dict = {}
    try:
        for stream in [m == "stream" for m in args.modes]:
            kind = "streaming TTFT" if stream else "non-streaming"
            lat = await sequential(targets, args.seq, stream)
            results[f"{kind}, sequential"] = added_table(lat, None)
            print_table(f"{kind}, sequential ({args.seq} interleaved requests each)",
                        results[f"{kind}, sequential"])
            for rate in args.paced:
                lat = await paced(targets, rate, args.per_round, args.rounds, stream)
                key = f"{kind}, paced {rate:g}/s"
                results[key] = added_table(lat, None)
                print_table(f"{kind}, paced at {rate:g} requests/s, open loop ({args.rounds} "
                            f"rounds x {args.per_round})", results[key])
            for c in args.concurrency:
                per_round = max(args.per_round, c * 4)
                lat, rps = await concurrent(targets, c, per_round, args.rounds, stream)
                key = f"{kind}, concurrency {c}"
                results[key] = added_table(lat, rps)
                print_table(f"{kind}, concurrency {c} ({args.rounds} rounds x {per_round})",
                            results[key])
        dl = next((t for t in targets if t.name == "devloop"), None)
        if dl is not None:
            db = work / "devloop-home" / "devloop.db"
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT cache, count(*) FROM calls GROUP BY cache").fetchall()
            results["devloop_ledger_rows"] = dict(rows)
            print(f"\ndevloop ledger rows by cache status: {dict(rows)}")
    finally:
        for t in targets[1:]:
            for conn in t.conns:
                conn.close()
            if t.proc:
                t.proc.stop()
    return results


async def hits_at(dl: Target, payload: bytes, c: int, n: int) -> tuple[list[float], float]:
    lat: list[float] = []
    left = n

    async def worker(i: int) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            r = await dl.conn(i).request("POST", dl.path, payload)
            assert r.status == 200 and r.headers.get(b"x-devloop-cache") == b"hit"
            lat.append(r.total_ms)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(c)))
    return lat, time.perf_counter() - start


async def section_cache(args: argparse.Namespace, work: Path, stub: Target) -> dict:
    """Cache hits on one repeated request: devloop and the baseline (when asked), each
    measured the same way, interleaved (sequential: request by request; concurrent: round by
    round) so a load change hits both."""
    trees: dict[str, Path | None] = {"devloop": None}
    if args.baseline:
        trees["baseline"] = baseline_tree(args.baseline)
    same = (b'{"model":"auto","messages":[{"role":"user","content":"cached question"}],'
            b'"temperature":0,"max_tokens":32}')
    servers = {name: await start_devloop(work, stub.port, f"{name}-cache", tree)
               for name, tree in trees.items()}
    out: dict[str, dict] = {name: {} for name in servers}
    try:
        for dl in servers.values():
            first = await dl.conn(0).request("POST", dl.path, same)
            assert first.headers.get(b"x-devloop-cache") == b"miss", first.headers
            for _ in range(200):
                await dl.conn(0).request("POST", dl.path, same)
        seq: dict[str, list[float]] = {name: [] for name in servers}
        order = list(servers.items())
        for i in range(args.cache_seq):  # request by request, the order turning each time
            for name, dl in (order if i % 2 == 0 else order[::-1]):
                r = await dl.conn(0).request("POST", dl.path, same)
                assert r.status == 200 and r.headers.get(b"x-devloop-cache") == b"hit"
                seq[name].append(r.total_ms)
        for name in servers:
            out[name]["sequential"] = pcts(seq[name])
        for c in (10, 50):  # rounds alternate between the servers; rps is the median round's
            lats: dict[str, list[float]] = {name: [] for name in servers}
            rates: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, dl in servers.items():
                    lat, elapsed = await hits_at(dl, same, c, args.cache_conc // args.rounds)
                    lats[name] += lat
                    rates[name].append(len(lat) / elapsed)
            for name in servers:
                out[name][f"concurrency {c}"] = {**pcts(lats[name]),
                                                 "rps": statistics.median(rates[name])}
    finally:
        for dl in servers.values():
            for conn in dl.conns:
                conn.close()
            assert dl.proc is not None
            dl.proc.stop()
    print("\n### cache hits (one repeated request)")
    print("| target | load | p50 ms | p95 ms | p99 ms | rps |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in out.items():
        for k, v in rows.items():
            rps = f"{v['rps']:.0f}" if "rps" in v else f"{1000 / v['p50']:.0f} (1/p50)"
            print(f"| {name} | {k} | {v['p50']:.2f} | {v['p95']:.2f} | {v['p99']:.2f} "
                  f"| {rps} |")
    if "baseline" in out:
        for k in out["devloop"]:
            key = "rps" if "rps" in out["devloop"][k] else "p50"
            ratio = out["devloop"][k][key] / out["baseline"][k][key]
            print(f"cache hits, {k}: devloop {key} / baseline {key} = {ratio:.2f}")
    return out if "baseline" in out else out["devloop"]


async def section_memory(args: argparse.Namespace, work: Path, stub: Target) -> dict:
    """10,000 requests (unique misses, streams, cache hits) at concurrency 10; RSS as it goes."""
    dl = await start_devloop(work, stub.port, "devloop-memory")
    assert dl.proc is not None
    pid = dl.proc.proc.pid
    samples = [(0, rss_mb(pid))]
    same = (b'{"model":"auto","messages":[{"role":"user","content":"memory question"}],'
            b'"temperature":0,"max_tokens":32}')
    done = 0
    try:
        step = args.memory // 10
        for _ in range(10):
            left = step

            async def worker(i: int) -> None:
                nonlocal left, done
                while left > 0:
                    left -= 1
                    k = done % 10
                    if k < 7:
                        r = await dl.conn(i).request("POST", dl.path, body("auto", False, "mem"))
                    elif k < 9:
                        r = await dl.conn(i).request("POST", dl.path, body("auto", True, "mem"),
                                                     stream=True)
                    else:
                        r = await dl.conn(i).request("POST", dl.path, same)
                    assert r.status == 200, r.body[:200]
                    done += 1

            await asyncio.gather(*(worker(i) for i in range(10)))
            samples.append((done, rss_mb(pid)))
    finally:
        for conn in dl.conns:
            conn.close()
        dl.proc.stop()
    print("\n### devloop resident memory (MiB) after N requests (70% unique, 20% streamed, "
          "10% cache hits; concurrency 10)")
    print("| requests | " + " | ".join(str(n) for n, _ in samples) + " |")
    print("|---|" + "---:|" * len(samples))
    print("| RSS MiB | " + " | ".join(f"{m:.1f}" for _, m in samples) + " |")
    half = samples[len(samples) // 2][1]
    print(f"growth over the second half: {samples[-1][1] - half:+.1f} MiB")
    return {"samples": samples, "growth_second_half_mb": samples[-1][1] - half}


async def section_ledger(args: argparse.Namespace, work: Path, stub: Target) -> dict:
    """Ledger rows through the gateway's own write path (in process, no HTTP): a CallRecord
    committed by the writer thread, one at a time and with 64 awaiting at once."""
    from devloop.config import Profile, Settings
    from devloop.gateway import Gateway, Prepared
    from devloop.types import ChatRequest, RequestContext, RouteDecision, Usage

    profile = Profile.model_validate({
        "name": "bench-ledger", "production_model": "anthropic/claude-sonnet-4-5",
        "tiers": {"shared": {"backend": "openai", "base_url": f"http://127.0.0.1:{stub.port}/v1",
                             "model": "stub-model"}},
        "routes": [{"tier": "shared"}]})
    gw = Gateway(Settings(home=work / "ledger-home"), profile)
    req = ChatRequest.model_validate({"model": "auto", "temperature": 0, "messages": [
        {"role": "user", "content": "a ledger row"}]})
    decision = RouteDecision("shared", "stub-model", "route 1 (default) -> shared")
    usage = Usage(12, 5)

    def record(i: int):  # type: ignore[no-untyped-def]
        ctx = RequestContext(request_id=f"ledger-{i}", endpoint="chat", protocol="openai")
        prep = Prepared(req, ctx, decision, None, "miss", time.perf_counter())
        return gw.meter.record(prep, "shared", "openai", "stub-model", decision.reason, "miss",
                               usage, 0.0, 0.0001)

    out: dict = {}
    try:
        for i in range(200):  # warm: statement cache, WAL file
            await gw.meter.write(record(i), None)
        seq: list[float] = []
        start = time.perf_counter()
        for i in range(args.ledger_seq):
            t = time.perf_counter()
            await gw.meter.write(record(i), None)
            seq.append((time.perf_counter() - t) * 1000)
        out["one at a time"] = {**pcts(seq), "rows_per_s": len(seq) / (time.perf_counter() - start)}
        recs = [record(i) for i in range(args.ledger_rows)]
        sem = asyncio.Semaphore(64)

        async def one(rec) -> None:  # type: ignore[no-untyped-def]
            async with sem:
                await gw.meter.write(rec, None)

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in recs))
        out["64 in flight"] = {"rows_per_s": len(recs) / (time.perf_counter() - start)}
    finally:
        await gw.close()
    with sqlite3.connect(work / "ledger-home" / "devloop.db") as conn:
        rows = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    assert rows == 200 + args.ledger_seq + args.ledger_rows, rows
    s = out["one at a time"]
    print("\n### ledger writes (a CallRecord to a committed row; WAL, synchronous=NORMAL)")
    print("| mode | rows/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    print(f"| one at a time, each awaiting its commit | {s['rows_per_s']:.0f} | {s['p50']:.3f} | "
          f"{s['p95']:.3f} | {s['p99']:.3f} |")
    print(f"| 64 in flight (group commit) | {out['64 in flight']['rows_per_s']:.0f} | - | - | - |")
    return out


async def main_async(args: argparse.Namespace) -> None:
    print(f"machine: {machine_info()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="devloop-bench-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work, args.gap_ms)
        results: dict = {"machine": machine_info(),
                         "args": {k: sorted(v) if isinstance(v, set) else v
                                  for k, v in vars(args).items()}}
        try:
            if "compare" in args.sections:
                results["compare"] = await section_compare(args, work, stub)
            if "cache" in args.sections:
                results["cache"] = await section_cache(args, work, stub)
            if "memory" in args.sections:
                results["memory"] = await section_memory(args, work, stub)
            if "ledger" in args.sections:
                results["ledger"] = await section_ledger(args, work, stub)
        finally:
            for conn in stub.conns:
                conn.close()
            assert stub.proc is not None
            stub.proc.stop()
        results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(dumps(results))
    print(f"\nresults: {out.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--only", default=",".join(ALL), help="targets, comma-separated")
    ap.add_argument("--sections", default="compare,cache,memory,ledger")
    ap.add_argument("--seq", type=int, default=400, help="sequential requests per target")
    ap.add_argument("--concurrency", default="10,50")
    ap.add_argument("--modes", default="plain,stream", help="plain (non-streaming), stream")
    ap.add_argument("--paced", default="",
                    help="open-loop rates (requests/s, comma-separated) to run besides")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=200, help="requests per target per round")
    ap.add_argument("--gap-ms", type=float, default=1.0, help="stub's pause between pieces")
    ap.add_argument("--cache-seq", type=int, default=2000)
    ap.add_argument("--cache-conc", type=int, default=5000)
    ap.add_argument("--memory", type=int, default=10_000)
    ap.add_argument("--ledger-seq", type=int, default=2000)
    ap.add_argument("--ledger-rows", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="fewer requests everywhere")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also run devloop as of this git revision (a worktree in .bench/), "
                         "interleaved: what a change did, on the same load")
    args = ap.parse_args()
    args.only = {"direct", *args.only.split(",")}
    args.sections = set(args.sections.split(","))
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.paced = [float(r) for r in args.paced.split(",") if r]
    args.modes = args.modes.split(",")
    if args.quick:
        args.seq, args.rounds, args.per_round = 150, 2, 100
        args.cache_seq, args.cache_conc, args.memory = 500, 2000, 2000
        args.ledger_seq, args.ledger_rows = 500, 5000
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import uvloop

    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
