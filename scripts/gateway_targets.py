"""The targets of scripts/bench_gateway.py (stub, devloop, LiteLLM proxy, Portkey, a minimal
passthrough): how each starts, how a request is timed, and the result tables."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import (  # noqa: E402
    BENCH_NODE,
    BENCH_VENV,
    MAIN_PY,
    ROOT,
    Conn,
    Proc,
    cpu_seconds,
    free_port,
    pcts,
    spawn,
    wait_http,
)

MASTER_KEY = "sk-bench-master"
ALL = ("direct", "devloop", "litellm", "portkey", "minimal")
RESULTS = ROOT / ".bench" / "results"
COUNTER = itertools.count()
CPU_US: dict[str, float] = {}  # server CPU per request in the last measurement, microseconds
# Whole-stream time (request to [DONE]) of each stream in the current measurement, ms: next to
# time to first token, it tells a slower gateway from one whose first piece comes later
# within an equally long stream (at a fixed concurrency the two split the same time).
STREAM_TOTAL_MS: dict[str, list[float]] = {}


@dataclass
class Target:
    name: str
    port: int
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/chat/completions"
    proc: Proc | None = None
    conns: list[Conn] = field(default_factory=list)

    def conn(self, i: int) -> Conn:
        while len(self.conns) <= i:
            self.conns.append(Conn("127.0.0.1", self.port))
        return self.conns[i]


def body(model: str, stream: bool, tag: str) -> bytes:
    """A unique request (so no cache answers it) of a typical short chat call."""
    n = next(COUNTER)
    msg = (b'{"model":"%s","messages":[{"role":"system","content":"You are a terse assistant."},'
           b'{"role":"user","content":"Say hello to request %d of %s."}],'
           b'"temperature":0,"max_tokens":32%s}'
           % (model.encode(), n, tag.encode(), b',"stream":true' if stream else b""))
    return msg


def devloop_profile(stub_port: int) -> str:
    return f"""
name: bench
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "http://127.0.0.1:{stub_port}/v1", model: stub-model}}
routes:
  - {{tier: shared}}
fallbacks: []
cache: {{enabled: true, ttl: 24h, max_temperature: 0.0}}
"""


def litellm_config(stub_port: int) -> str:
    return f"""
model_list:
  - model_name: stub-model
    litellm_params:
      model: openai/stub-model
      api_base: http://127.0.0.1:{stub_port}/v1
      api_key: sk-stub
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: {MASTER_KEY}
"""


# -- starting things ------------------------------------------------------------------------
async def start_stub(work: Path, gap_ms: float) -> Target:
    port = free_port()
    p = spawn("stub", [str(MAIN_PY), str(ROOT / "scripts" / "upstream_stub.py"), "--port",
                       str(port), "--gap-ms", str(gap_ms)], port, work)
    await wait_http(p, "/v1/models", want=200)
    return Target("direct", port, "stub-model", proc=p)


def baseline_tree(rev: str) -> Path:
    """A checkout of ``rev`` (a detached git worktree under .bench/), made once: the
    earlier devloop that a change is measured against, in the same run on the same load."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    path = ROOT / ".bench" / f"baseline-{sha}"
    if not (path / "devloop").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force",
                        str(path), sha], check=True, capture_output=True)
    return path


async def start_devloop(work: Path, stub: int, name: str = "devloop",
                        tree: Path | None = None) -> Target:
    """`devloop serve` on the bench profile; ``tree``: run that checkout's code instead."""
    home = work / f"{name}-home"
    home.mkdir(parents=True, exist_ok=True)
    profile = work / f"{name}.yaml"
    profile.write_text(devloop_profile(stub))
    port = free_port()
    env = {"DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "DEVLOOP_LOG_LEVEL": "warning"}
    # DEVLOOP_BENCH_LAUNCHER: a Python file standing in for `-m devloop` (A/B experiments).
    launcher = os.environ.get("DEVLOOP_BENCH_LAUNCHER")
    entry = [launcher] if launcher else ["-m", "devloop"]
    if tree is not None:  # its own code first on the path, ahead of the editable install
        env["PYTHONPATH"] = str(tree)
    p = spawn(name, [str(MAIN_PY), *entry, "serve", "--port", str(port),
                     "--profile", str(profile)], port, work, env, cwd=tree)
    await wait_http(p, "/health", want=200)
    return Target(name, port, "auto", proc=p)


async def start_litellm(work: Path, stub: int) -> Target:
    exe = BENCH_VENV / "bin" / "litellm"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} missing: run `make bench` (it builds .venv-bench)")
    cfg = work / "litellm.yaml"
    cfg.write_text(litellm_config(stub))
    port = free_port()
    env = {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True",
           "NO_DOCS": "True", "NO_REDOC": "True"}
    p = spawn("litellm", [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port",
                          str(port), "--num_workers", "1", "--telemetry", "False"], port, work, env)
    await wait_http(p, "/health/liveliness", want=200, timeout=180)
    return Target("litellm", port, "stub-model", {"Authorization": f"Bearer {MASTER_KEY}"}, proc=p)


async def start_portkey(work: Path, stub: int) -> Target:
    script = BENCH_NODE / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not script.exists():
        raise FileNotFoundError(f"{script} missing: run `make bench` (npm ci in .bench)")
    port = free_port()
    p = spawn("portkey", ["node", str(script), f"--port={port}", "--headless"], port, work,
              {"NODE_ENV": "production"}, cwd=BENCH_NODE)
    await wait_http(p, "/", timeout=60)
    headers = {"x-portkey-provider": "openai",
               "x-portkey-custom-host": f"http://127.0.0.1:{stub}/v1",
               "Authorization": "Bearer sk-stub"}
    return Target("portkey", port, "stub-model", headers, proc=p)


async def start_minimal(work: Path, stub: int) -> Target:
    port = free_port()
    p = spawn("minimal", [str(MAIN_PY), str(ROOT / "scripts" / "minimal_passthrough.py"),
                          "--port", str(port), "--upstream", f"http://127.0.0.1:{stub}/v1"],
              port, work)
    await wait_http(p, "/", timeout=30)
    return Target("minimal", port, "stub-model", proc=p)


# -- measuring ------------------------------------------------------------------------------
async def one(t: Target, conn_index: int, stream: bool) -> float:
    reply = await t.conn(conn_index).request("POST", t.path, body(t.model, stream, t.name),
                                             t.headers, stream=stream)
    if reply.status != 200:
        raise RuntimeError(f"{t.name}: HTTP {reply.status}: {reply.body[:300]!r}")
    if stream:
        if reply.ttft_ms is None:
            raise RuntimeError(f"{t.name}: stream without content: {reply.body[:300]!r}")
        STREAM_TOTAL_MS.setdefault(t.name, []).append(reply.total_ms)
        return reply.ttft_ms
    return reply.total_ms


async def sequential(targets: list[Target], n: int, stream: bool) -> dict[str, list[float]]:
    """Request by request: target order rotates each round so none is always first."""
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    for t in targets:  # warm connections, pools, JITs
        for _ in range(20):
            await one(t, 0, stream)
    cpu0 = {t.name: proc_cpu(t) for t in targets}
    STREAM_TOTAL_MS.clear()
    for i in range(n):
        k = i % len(targets)
        for t in targets[k:] + targets[:k]:
            out[t.name].append(await one(t, 0, stream))
    CPU_US.update({t.name: (proc_cpu(t) - cpu0[t.name]) / n * 1e6 for t in targets})
    return out


def proc_cpu(t: Target) -> float:
    return cpu_seconds(t.proc.proc.pid) if t.proc else 0.0


async def concurrent(targets: list[Target], c: int, per_round: int, rounds: int, stream: bool
                     ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """C connections per target; rounds alternate targets so drift hits all alike."""
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    busy: dict[str, float] = {t.name: 0.0 for t in targets}
    cpu = {t.name: 0.0 for t in targets}

    async def burst(t: Target, count: int, keep: bool) -> None:
        left = count

        async def worker(i: int) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                ms = await one(t, i, stream)
                if keep:
                    out[t.name].append(ms)

        start, cpu0 = time.perf_counter(), proc_cpu(t)
        await asyncio.gather(*(worker(i) for i in range(c)))
        if keep:
            busy[t.name] += time.perf_counter() - start
            cpu[t.name] += proc_cpu(t) - cpu0

    for t in targets:
        await burst(t, c * 2, keep=False)
    STREAM_TOTAL_MS.clear()
    for r in range(rounds):
        k = r % len(targets)
        for t in targets[k:] + targets[:k]:
            await burst(t, per_round, keep=True)
    rps = {name: len(out[name]) / busy[name] for name in out}
    CPU_US.update({name: cpu[name] / len(out[name]) * 1e6 for name in out})
    return out, rps


async def paced(targets: list[Target], rate: float, per_round: int, rounds: int, stream: bool
                ) -> dict[str, list[float]]:
    """Open loop: requests start every 1/``rate`` s whether or not earlier ones have ended
    (what clients do; at a fixed concurrency a gateway that ends its streams sooner gets its
    next request sooner and so times its own first tokens against more work in flight).
    Rounds alternate targets, as in ``concurrent``."""
    out: dict[str, list[float]] = {t.name: [] for t in targets}

    async def round_of(t: Target, count: int, keep: bool) -> None:
        free: list[int] = []
        opened = 0

        async def one_paced() -> None:
            nonlocal opened
            if free:
                i = free.pop()
            else:
                i, opened = opened, opened + 1
            try:
                ms = await one(t, i, stream)
            finally:
                free.append(i)
            if keep:
                out[t.name].append(ms)

        tasks, start = [], time.perf_counter()
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_paced()))
        await asyncio.gather(*tasks)

    for t in targets:
        await round_of(t, int(rate) // 2, keep=False)
    STREAM_TOTAL_MS.clear()
    for r in range(rounds):
        k = r % len(targets)
        for t in targets[k:] + targets[:k]:
            await round_of(t, per_round, keep=True)
    return out


def added_table(lat: dict[str, list[float]], rps: dict[str, float] | None) -> dict[str, dict]:
    base = pcts(lat["direct"])
    table: dict[str, dict] = {}
    for name, values in lat.items():
        p = pcts(values)
        row = {"p50": p["p50"], "p95": p["p95"], "p99": p["p99"], "n": p["n"]}
        if name != "direct":
            row.update({f"added_{q}": p[q] - base[q] for q in ("p50", "p95", "p99")})
        if rps:
            row["rps"] = rps[name]
        if STREAM_TOTAL_MS.get(name):
            row["stream_total_p50"] = pcts(STREAM_TOTAL_MS[name])["p50"]
        if name in CPU_US and name != "direct":  # the stub serves every target: not its own
            row["cpu_us"] = CPU_US[name]
        table[name] = row
    dl = table.get("devloop")
    if dl:
        for other in ("baseline", "litellm", "portkey", "minimal"):
            if other in table and table[other]["added_p50"] > 0:
                dl[f"ratio_p50_to_{other}"] = dl["added_p50"] / table[other]["added_p50"]
        if "minimal" in table:
            dl["minus_minimal_p50"] = dl["added_p50"] - table["minimal"]["added_p50"]
    return table


def print_table(title: str, table: dict[str, dict]) -> None:
    print(f"\n### {title}")
    print("| target | p50 ms | p95 ms | p99 ms | added p50 | added p95 | added p99 | rps "
          "| CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in table.items():
        added = (" | ".join(f"{r[f'added_{q}']:.2f}" for q in ("p50", "p95", "p99"))
                 if "added_p50" in r else "- | - | -")
        rps = f"{r['rps']:.0f}" if "rps" in r else "-"
        cpu = f"{r['cpu_us']:.0f}" if "cpu_us" in r else "-"
        print(f"| {name} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {added} | {rps} "
              f"| {cpu} |")
    dl = table.get("devloop", {})
    ratios = [f"{k.removeprefix('ratio_p50_to_')} {v:.3f}" for k, v in dl.items()
              if k.startswith("ratio_")]
    if ratios:
        print(f"devloop added-p50 ratio to: {', '.join(ratios)}; devloop - minimal p50: "
              f"{dl.get('minus_minimal_p50', float('nan')):.2f} ms")
    whole = {n: r["stream_total_p50"] for n, r in table.items() if "stream_total_p50" in r}
    if whole:
        print("whole stream (request to [DONE]) p50 ms: "
              + ", ".join(f"{n} {v:.2f}" for n, v in whole.items()))
