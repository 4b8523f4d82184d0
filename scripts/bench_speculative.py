"""Prompt-lookup speculative decoding on the embedded model, by request kind.

In process (LlamaRunner, as the embedded tier runs it), temperature 0, the same request
with speculation on and off, alternating run by run; the prefix is processed before the
timed part (a warm-up call), so the figures are generation time. Also checks that the
two outputs are identical, which greedy verification promises.

    .venv/bin/python scripts/bench_speculative.py [--runs 3] [--max-tokens 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from benchlib import ROOT, dumps, machine_info  # noqa: E402

FUNCTION = '''def summarize_orders(orders, customers, since=None):
    totals = {}
    for order in orders:
        if since is not None and order["created"] < since:
            continue
        customer = customers.get(order["customer_id"])
        if customer is None:
            continue
        key = customer["name"]
        if key not in totals:
            totals[key] = {"count": 0, "amount": 0.0, "items": 0}
        totals[key]["count"] += 1
        totals[key]["amount"] += order["amount"]
        totals[key]["items"] += len(order["items"])
    rows = []
    for name, t in sorted(totals.items()):
        rows.append(f"{name}: {t['count']} orders, {t['items']} items, {t['amount']:.2f}")
    return rows
'''

REQUESTS: dict[str, dict[str, Any]] = {
    "edit": {"chat": [
        {"role": "system", "content": "You are a careful Python programmer."},
        {"role": "user", "content": "Rename the variable `totals` to `by_customer` in this "
         "function. Reply with the whole function only.\n```python\n" + FUNCTION + "```"}]},
    "fim": {"prefix": FUNCTION.split("    rows = []")[0] + "    rows = []\n",
            "suffix": "    return rows\n\n\ndef main():\n    print(summarize_orders([], {}))\n"},
    "completion": {"prompt": "# Notes on the orders report\n\n" + FUNCTION +
                   "\n# The same function, unchanged, for the archive:\n"},
    "chat": {"chat": [{"role": "user",
                       "content": "Write a short story about a robot who learns to garden."}]},
}


def build_prompt(runner: Any, kind: str) -> str:
    req = REQUESTS[kind]
    if "chat" in req:
        return str(runner.render_chat(req["chat"])[0])
    if kind == "fim":
        return str(runner.fim_prompt(req["prefix"], req["suffix"]))
    return str(req["prompt"])


def make_runner(home: Path, kinds: str, n_pred: int | None = None) -> Any:
    from devloop.backends.embedded import LlamaRunner, default_gguf
    from devloop.config import Settings

    runner = LlamaRunner(default_gguf(), 4096, settings=Settings(
        home=home, embedded_speculative=kinds, embedded_prefix_cache_mb=0))
    if n_pred is not None:
        runner.draft_tokens = n_pred
    return runner


def once(runner: Any, prompt: str, kind: str, max_tokens: int) -> tuple[str, int, float]:
    kwargs = {"max_tokens": max_tokens, "temperature": 0}
    if kind in ("edit", "chat"):
        kwargs["stop"] = ["<|im_end|>"]
    start = time.perf_counter()
    out = runner.generate(prompt, kwargs, kind)
    secs = time.perf_counter() - start
    return out["choices"][0]["text"], out["usage"]["completion_tokens"], secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--n-pred", type=int, default=10, help="draft tokens per step")
    args = ap.parse_args()
    all_kinds = ",".join(REQUESTS)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        on = make_runner(Path(tmp) / "on", all_kinds, args.n_pred)
        off = make_runner(Path(tmp) / "off", "")
        print(f"### prompt-lookup decoding, {args.n_pred} draft tokens, temperature 0, "
              f"max_tokens {args.max_tokens}, {args.runs} alternating runs")
        print("| kind | tokens | off tok/s | on tok/s | speed-up | identical |")
        print("|---|---:|---:|---:|---:|---|")
        for kind in REQUESTS:
            prompt = build_prompt(on, kind)
            for r in (on, off):  # the prompt's KV first: time generation, not the prefix
                once(r, prompt, kind, 1)
            times: dict[str, list[float]] = {"on": [], "off": []}
            texts: dict[str, str] = {}
            n_tokens = 0
            for _ in range(args.runs):
                for name, r in (("off", off), ("on", on)):
                    text, n_tokens, secs = once(r, prompt, kind, args.max_tokens)
                    times[name].append(secs)
                    texts[name] = text
            rate = {k: n_tokens / statistics.median(v) for k, v in times.items()}
            same = texts["on"] == texts["off"]
            results[kind] = {"tokens": n_tokens, "tok_s_off": rate["off"], "tok_s_on": rate["on"],
                             "speedup": rate["on"] / rate["off"], "identical": same,
                             "seconds": times}
            print(f"| {kind} | {n_tokens} | {rate['off']:.1f} | {rate['on']:.1f} | "
                  f"{rate['on'] / rate['off']:.2f}x | {'yes' if same else 'NO'} |", flush=True)
        on.close()
        off.close()
    out = ROOT / ".bench" / "results" / f"bench_speculative-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps({"machine": machine_info(), "n_pred": args.n_pred, "kinds": results}))


if __name__ == "__main__":
    main()
