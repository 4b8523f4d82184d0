"""Peak memory and time of the compression stage's compressor on a ~5,000-token text.

Runs LLMLingua (SmolLM2-135M on CPU, offline) through devloop's protected, windowed
compressor and prints one JSON line: tokens before and after, seconds, windows, and the
process's peak RSS from resource.getrusage (the whole process: Python, torch, the model).

    python scripts/bench_compression_rss.py [--home DIR] [--tokens 5000] [--window 400]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAGRAPH = (  # mostly prose (what compression may touch), a few protected spans
    "Reviewers read the whole change before they comment, and they say what they would do "
    "instead when they ask for a change. Comments explain the reason and not only the rule, "
    "so that the author learns something they can apply the next time they write similar "
    "code. A review that only lists problems without saying which of them block the merge "
    "leaves the author guessing about what really matters, so every comment says whether it "
    "is blocking, a suggestion or a question. When a reviewer is unsure, they ask rather than "
    "assert, and when the author disagrees, the two talk it through instead of trading long "
    "comments. Small changes get reviewed faster and more carefully than large ones, so "
    "authors split their work into steps that each make sense on their own and keep the "
    "description short and specific about what changed and why it was needed. "
    "See https://wiki.example.com/review#etiquette before you start.\n\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=Path.home() / ".local/share/devloop")
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--window", type=int, default=400)
    args = parser.parse_args()

    from devloop.pipeline.compression_parts import ProtectedCompressor
    from devloop.pipeline.lingua import LinguaCompressor
    from devloop.pipeline.providers import ModelTokenizer

    tok = ModelTokenizer("anthropic/claude-sonnet-4-5")
    text = ""
    while len(tok.encode(text)) < args.tokens:
        text += PARAGRAPH
    inner = LinguaCompressor(args.home)
    windows: list[int] = []

    class Counting:
        def compress(self, t: str, rate: float) -> object:
            windows.append(len(tok.encode(t)))
            return inner.compress(t, rate)

    pc = ProtectedCompressor(Counting(), tok, cache=None, window_tokens=args.window)
    started = time.perf_counter()
    out = pc.compress(text, 0.5)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    figures = json.dumps({
        "origin_tokens": len(tok.encode(text)), "compressed_tokens": len(tok.encode(out)),
        "windows": len(windows), "largest_window_tokens": max(windows, default=0),
        "seconds": round(seconds, 1), "model_load_seconds": inner.load_seconds,
        "model_convert_seconds": inner.convert_seconds,
        "peak_rss_mb": round(peak_mb, 1),
    })
    print(figures)
    results = ROOT / ".bench" / "results"  # read by scripts/bench_targets.py
    results.mkdir(parents=True, exist_ok=True)
    (results / f"bench_compression_rss-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(figures)


if __name__ == "__main__":
    main()
