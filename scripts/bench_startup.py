"""`devloop serve` time to its first 200 on /health, from the moment the process is started.

    .venv/bin/python scripts/bench_startup.py [--runs 7] [--importtime]

Two profiles: the bench profile (one openai tier at a loopback stub) and the bundled
default (Ollama, embedded, shared, frontier). The embedded model is never loaded at
startup. One unmeasured start per profile first writes the bytecode caches, as any
installed Python has them (PYTHONDONTWRITEBYTECODE is dropped for the children).
With --importtime, the slowest imports of one run are printed (python -X importtime).

The target is a first /health within TARGET_S (here, not in a test: a loaded machine would
fail a wall-clock test; tests/test_startup.py asserts what needs no clock).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import MAIN_PY, ROOT, dumps, free_port, machine_info, spawn, wait_http  # noqa: E402
from gateway_targets import devloop_profile, start_stub  # noqa: E402

TARGET_S = 1.5


async def once(work: Path, profile: str, i: int) -> float:
    home = work / f"home-{i}"
    home.mkdir()
    port = free_port()
    env = {"DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    # `python -m devloop` from the clone, as tests/helpers.py starts it (see docs/benchmarks.md
    # on the console script).
    p = spawn(f"serve-{i}", [str(MAIN_PY), "-m", "devloop", "serve", "--port", str(port),
                             "--profile", profile], port, work, env)
    try:
        return await wait_http(p, "/health", want=200, timeout=60)
    finally:
        p.stop()


def import_profile(profile: str) -> str:
    """The slowest imports of `devloop serve`'s module graph (cumulative, microseconds)."""
    code = ("from devloop.commands.serve import serve; from devloop.server.app import create_app;"
            f"from devloop.commands._common import load; s, p = load({profile!r}); create_app(s, p)")
    out = subprocess.run([str(MAIN_PY), "-X", "importtime", "-c", code], cwd=ROOT,
                         capture_output=True, text=True, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            self_us = int(parts[0].split(":", 1)[1])
            rows.append((int(parts[1]), self_us, parts[2].strip()))
    rows.sort(reverse=True)
    return "\n".join(f"{cum / 1000:8.1f} ms cumulative {s / 1000:7.1f} ms self  {name}"
                     for cum, s, name in rows[:25])


async def run(args: argparse.Namespace) -> dict:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="devloop-startup-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work, 0.0)
        try:
            bench = work / "bench.yaml"
            bench.write_text(devloop_profile(stub.port))
            profiles = {"bench (openai tier)": str(bench), "default (bundled)": "default"}
            for name in profiles:
                results[name] = []
            for name, profile in profiles.items():  # not counted: writes bytecode caches
                await once(work, profile, 900 + list(profiles).index(name))
            for i in range(args.runs):  # alternate the two, so drift hits both
                for name, profile in profiles.items():
                    results[name].append(await once(work, profile, len(results) * 100 + i * 2
                                                    + list(profiles).index(name)))
            imports = import_profile(str(bench)) if args.importtime else ""
        finally:
            stub.proc.stop()  # type: ignore[union-attr]
    print("### `devloop serve` start to first /health 200 (seconds)")
    print("| profile | median | min | max | runs |")
    print("|---|---:|---:|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | "
              f"{max(values):.3f} | {len(values)} |")
    slow = [name for name, values in results.items() if statistics.median(values) >= TARGET_S]
    print(f"\ntarget: median below {TARGET_S} s: " + (f"MISSED by {', '.join(slow)}" if slow
                                                        else "met"))
    if imports:
        print("\nslowest imports (bench profile):\n" + imports)
    return {k: {"median": statistics.median(v), "all": v} for k, v in results.items()}


def main() -> None:
    # A user's Python caches bytecode; a shell that sets this would time compiling instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    import uvloop

    out = uvloop.run(run(args))
    results = ROOT / ".bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"bench_startup-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        dumps({"machine": machine_info(), "startup": out}))


if __name__ == "__main__":
    main()
