"""Profile devloop's request path with py-spy while a bounded load runs against the stub.

    .venv/bin/python scripts/bench_profile.py [--mode plain|stream|hit] [--seconds 20]
        [--concurrency 1] [--out .bench/profile.txt]

Prints the functions with the most samples (self and cumulative) and writes py-spy's
collapsed stacks (for flamegraph tools) next to ``--out``. py-spy comes from .venv-bench.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import BENCH_VENV, ROOT  # noqa: E402
from gateway_targets import baseline_tree, body, start_devloop, start_stub  # noqa: E402


def summarize(collapsed: Path, top: int) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    cum_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        total += count
        frames = stack.split(";")
        self_counts[frames[-1]] += count
        for f in set(frames):
            cum_counts[f] += count
    out = [f"total samples: {total}", "", "self:"]
    out += [f"{c / total:6.1%}  {f}" for f, c in self_counts.most_common(top)]
    out += ["", "cumulative:"]
    out += [f"{c / total:6.1%}  {f}" for f, c in cum_counts.most_common(top)]
    return "\n".join(out)


async def load(port_target, mode: str, seconds: float, c: int) -> int:  # type: ignore[no-untyped-def]
    t = port_target
    same = b'{"model":"auto","messages":[{"role":"user","content":"hit"}],"temperature":0}'
    end = time.perf_counter() + seconds
    n = 0

    async def worker(i: int) -> None:
        nonlocal n
        while time.perf_counter() < end:
            if mode == "hit":
                payload, stream = same, False
            else:
                stream = mode == "stream"
                payload = body("auto", stream, "prof")
            r = await t.conn(i).request("POST", t.path, payload, stream=stream)
            assert r.status == 200, r.body[:200]
            n += 1

    await asyncio.gather(*(worker(i) for i in range(c)))
    return n


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="devloop-prof-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work, 0.0)
        tree = baseline_tree(args.baseline) if args.baseline else None
        dl = await start_devloop(work, stub.port, tree=tree)
        assert dl.proc is not None and stub.proc is not None
        try:
            await load(dl, args.mode, 2.0, args.concurrency)  # warm up
            collapsed = Path(args.out).with_suffix(".collapsed")
            collapsed.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([
                str(BENCH_VENV / "bin" / "py-spy"), "record", "--pid", str(dl.proc.proc.pid),
                "--rate", "1000", "--duration", str(int(args.seconds)), "--format", "raw",
                "--output", str(collapsed), "--nonblocking", *(["--gil"] if args.gil else []),
                *(["--idle"] if args.idle else []), *(["--threads"] if args.threads else []),
            ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            await asyncio.sleep(1.0)
            n = await load(dl, args.mode, args.seconds - 1.5, args.concurrency)
            spy.wait(60)
            print(f"{n} requests ({args.mode}, concurrency {args.concurrency})")
            text = summarize(collapsed, args.top)
            Path(args.out).write_text(text)
            print(text)
        finally:
            for t in (dl, stub):
                for conn in t.conns:
                    conn.close()
                assert t.proc is not None
                t.proc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--mode", choices=["plain", "stream", "hit"], default="plain")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="profile devloop as of this git revision instead (a .bench/ worktree)")
    ap.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    ap.add_argument("--idle", action="store_true", help="include idle threads")
    ap.add_argument("--threads", action="store_true", help="stacks start with their thread")
    ap.add_argument("--out", default=str(ROOT / ".bench" / "profile.txt"))
    import uvloop

    uvloop.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
