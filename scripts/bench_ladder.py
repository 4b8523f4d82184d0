"""The ladder and the embedded model's prefix cache, timed as a developer meets them.

One run prints:
  1. `devloop check --stage draft --stage cache_order` on a ~5,000-token eval set
     (scripts/bench_data/style-guide-review.yaml): cold (new DEVLOOP_HOME), warm (the same
     files again), after editing one case's tail, after editing the prompt's tail (every
     case re-runs on the stored prefix), and the case-tail edit with the prefix cache off
     (DEVLOOP_EMBEDDED_PREFIX_CACHE_MB=0) for the A/B in the same run. Each is a new
     `devloop check` process, as on the command line (model load included).
  2. `devloop serve` with the embedded tier: a first and a second turn of a conversation
     with a ~3,000-token system prompt A, then a ~3,000-token prompt B, then A again with a
     new question (A, B, A), with the prefix cache on and (A/B) off, and the cached_tokens
     each call reported.
The compression stage is left out: it is timed by its own benchmark.

    .venv/bin/python scripts/bench_ladder.py [--quick] [--only ladder|embedded] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import MAIN_PY, ROOT, Conn, dumps, free_port, machine_info, spawn, wait_http  # noqa: E402

PY = str(MAIN_PY if MAIN_PY.exists() else Path(sys.executable))
EVALSET = ROOT / "scripts" / "bench_data" / "style-guide-review.yaml"
PROFILE = """
name: bench-ladder
production_model: anthropic/claude-sonnet-4-5
tiers:
  local: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: local}
fallbacks: []
cache: {enabled: true, ttl: 24h, max_temperature: 0.0}
"""
ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# -- 1. the ladder ----------------------------------------------------------------------------
def check(work: Path, home: Path, evalset: Path, env: dict[str, str] | None = None
          ) -> tuple[float, dict]:
    cmd = [PY, "-m", "devloop", "check", str(evalset), "--stage", "draft", "--stage",
           "cache_order", "--json", "--profile", str(work / "profile.yaml")]
    full = {**os.environ, **ENV, "DEVLOOP_HOME": str(home), **(env or {})}
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, check=False)
    secs = time.perf_counter() - start
    if out.returncode not in (0, 1):
        raise RuntimeError(f"devloop check failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return secs, json.loads(out.stdout)[0]


def edit_case_tail(src: Path, dst: Path, note: str) -> None:
    data = yaml.safe_load(src.read_text())
    case = data["cases"][-1]
    key = next(iter(case["vars"]))
    case["vars"][key] = case["vars"][key].rstrip("\n") + f"\n    # {note}\n"
    dst.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))


def edit_prompt_tail(src: Path, dst: Path, note: str) -> None:
    data = yaml.safe_load(src.read_text())
    msg = data["prompt"]["messages"][-1]
    msg["content"] = msg["content"].rstrip() + f"\n{note}"
    dst.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))


def draft_facts(report: dict) -> str:
    d = report["stages"]["draft"]
    return (f"{d.get('cached_tokens', 0):,} of {d.get('prompt_tokens', 0):,} prompt tokens "
            f"reused; cases: " + ", ".join(f"{c['id']} {c.get('cache')}" for c in d["cases"]))


def section_ladder(args: argparse.Namespace, work: Path) -> dict:
    (work / "profile.yaml").write_text(PROFILE)
    evalset = work / "style-guide-review.yaml"
    shutil.copy(EVALSET, evalset)
    home = work / "home-ladder"
    rows: dict[str, dict] = {}

    def run(name: str, path: Path, h: Path = home, env: dict[str, str] | None = None) -> None:
        secs, report = check(work, h, path, env)
        rows[name] = {"seconds": round(secs, 2), "facts": draft_facts(report),
                      "status": report["stages"]["draft"]["status"]}
        print(f"  {name}: {secs:.1f}s ({rows[name]['facts']})", flush=True)

    run("cold (new home)", evalset)
    run("warm (unchanged)", evalset)
    edited = work / "edited.yaml"
    edit_case_tail(evalset, edited, "edited: also check the error path")
    run("after editing a case's tail", edited)
    edit_prompt_tail(evalset, edited, "Be brief.")
    run("after editing the prompt's tail", edited)
    if not args.quick:
        off_home = work / "home-off"
        check(work, off_home, evalset, {"DEVLOOP_EMBEDDED_PREFIX_CACHE_MB": "0"})  # its cold run
        edit_case_tail(evalset, edited, "edited: also check the error path")
        run("after editing a case's tail, prefix cache off", edited, off_home,
            {"DEVLOOP_EMBEDDED_PREFIX_CACHE_MB": "0"})
    return rows


# -- 2. the embedded model over HTTP ---------------------------------------------------------
def prefix_text(order: list[int], words: int) -> str:
    """About ``words`` words of the style guide, its sections in ``order``."""
    system = yaml.safe_load(EVALSET.read_text())["prompt"]["system"]
    sections = system.split("\n## ")
    head, body = sections[0], sections[1:]
    text = head + "".join("\n## " + body[i % len(body)] for i in order)
    return " ".join(text.split(" ")[:words])


async def chat(conn: Conn, messages: list[dict], max_tokens: int = 24) -> dict:
    payload = orjson.dumps({"model": "embedded", "messages": messages, "temperature": 0,
                            "max_tokens": max_tokens})
    start = time.perf_counter()
    reply = await conn.request("POST", "/v1/chat/completions", payload,
                               {"X-Devloop-Cache": "bypass"})
    secs = time.perf_counter() - start
    assert reply.status == 200, reply.body[:300]
    body = orjson.loads(reply.body)
    usage = body["usage"]
    return {"seconds": round(secs, 2), "prompt_tokens": usage["prompt_tokens"],
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            "text": body["choices"][0]["message"]["content"]}


async def with_server(work: Path, name: str, env: dict[str, str], body) -> dict:  # type: ignore[no-untyped-def]
    (work / "embedded.yaml").write_text(PROFILE.replace("local:", "embedded:")
                                        .replace("{tier: local}", "{tier: embedded}"))
    port = free_port()
    p = spawn(name, [PY, "-m", "devloop", "serve", "--port", str(port), "--profile",
                     str(work / "embedded.yaml")], port, work,
              {**ENV, "DEVLOOP_HOME": str(work / f"home-{name}"), **env})
    conn = Conn("127.0.0.1", port)
    try:
        await wait_http(p, "/health", want=200)
        await chat(conn, [{"role": "user", "content": "hi"}], 2)  # load the model
        return await body(conn)
    finally:
        conn.close()
        p.stop()


async def sequence(conn: Conn) -> dict:
    """A's first turn, its second turn, then B, then back to A with a new question."""
    a = prefix_text(list(range(12)), 2300)
    b = prefix_text(list(range(11, -1, -1)), 2300)
    first = [{"role": "system", "content": a},
             {"role": "user", "content": "Review: def f(x): return eval(x)"}]
    one = await chat(conn, first)
    second = [*first, {"role": "assistant", "content": one["text"]},
              {"role": "user", "content": "And which rule covers logging secrets?"}]
    return {"A first turn": one, "A second turn": await chat(conn, second),
            "B": await chat(conn, [{"role": "system", "content": b},
                                   {"role": "user", "content": "Review: password = 'hunter2'"}]),
            "A again": await chat(conn, [{"role": "system", "content": a},
                                         {"role": "user", "content": "Review: print(secret)"}])}


def show(title: str, calls: dict[str, dict]) -> None:
    print(f"  {title}: " + "; ".join(
        f"{k} {v['seconds']:.1f}s ({v['prompt_tokens']:,} prompt, {v['cached_tokens']:,} cached)"
        for k, v in calls.items()), flush=True)


async def section_embedded(args: argparse.Namespace, work: Path) -> dict:
    out = {"on": await with_server(work, "cache-on", {}, sequence)}
    show("prefix cache on", out["on"])
    if not args.quick:
        out["off"] = await with_server(
            work, "cache-off", {"DEVLOOP_EMBEDDED_PREFIX_CACHE_MB": "0"}, sequence)
        show("prefix cache off", out["off"])
    return out


def summary(ladder: dict, emb: dict) -> list[str]:
    lines = ["| measure | figure | target | met |", "|---|---:|---:|---|"]
    for name, row in ladder.items():
        target = "<= 15 s" if name == "after editing a case's tail" else ""
        met = ("yes" if row["seconds"] <= 15 else "no") if target else ""
        lines.append(f"| ladder {name} | {row['seconds']:.1f} s | {target} | {met} |")
    for mode in ("on", "off"):
        if mode not in emb:
            continue
        i = emb[mode]
        lines.append(f"| embedded, prefix cache {mode}: first turn, "
                     f"{i['A first turn']['prompt_tokens']:,}-token prompt | "
                     f"{i['A first turn']['seconds']:.1f} s | | |")
        lines.append(f"| embedded, prefix cache {mode}: second turn (cached "
                     f"{i['A second turn']['cached_tokens']:,}) | "
                     f"{i['A second turn']['seconds']:.1f} s | | |")
        ratio = i["A again"]["seconds"] / i["A first turn"]["seconds"]
        ok = ratio <= 0.25 and i["A again"]["cached_tokens"] > 2000
        lines.append(f"| A, B, A with prefix cache {mode}: return to A / first A "
                     f"(cached {i['A again']['cached_tokens']:,}) | {ratio:.0%} | <= 25%, "
                     f"cached > 2,000 | {('yes' if ok else 'no') if mode == 'on' else ''} |")
    return lines


async def main_async(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="devloop-bench-ladder-") as tmp:
        work = Path(tmp)
        ladder: dict = {}
        emb: dict = {}
        if args.only in (None, "ladder"):
            print("## ladder: devloop check --stage draft --stage cache_order "
                  f"({EVALSET.name})", flush=True)
            ladder = section_ladder(args, work)
        if args.only in (None, "embedded"):
            print("## embedded model over HTTP (devloop serve): A, A's second turn, B, A",
                  flush=True)
            emb = await section_embedded(args, work)
    print()
    for line in summary(ladder, emb):
        print(line)
    return {"ladder": ladder, "embedded": emb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="skip the prefix-cache-off A/B runs")
    ap.add_argument("--only", choices=("ladder", "embedded"), default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    out = {"machine": machine_info(), **asyncio.run(main_async(args))}
    target = args.json or (ROOT / ".bench" / "results" /
                           f"bench_ladder-{time.strftime('%Y%m%d-%H%M%S')}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(out))


if __name__ == "__main__":
    main()
