"""How much of `devloop eval`'s measured latency is the model's: three cases against a scripted
loopback model (tests/evals/recording_model.py), one at a time, twice. Before the warm-up the
first case carried litellm's start-up (about 0.7-1.4 s); now each case shows the model's time.

    PYTHONPATH=. python scripts/bench_eval_latency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.evals.recording_model import RecordingModel


def main() -> None:
    model = RecordingModel().start()
    root = Path(tempfile.mkdtemp())
    cases = "".join(f"  - {{id: c{i}, vars: {{q: 'SAY<<x>>'}}, "
                    "assert: [{type: latency, threshold: 600000}]}\n" for i in range(3))
    (root / "lat.yaml").write_text("name: lat\nprompt: {messages: [{role: user, content: "
                                   "\"{{q}}\"}]}\ncases:\n" + cases)
    env = {**os.environ, "DEVLOOP_HOME": str(root / "home"), "LITELLM_LOCAL_MODEL_COST_MAP":
           "True", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        for run in (1, 2):
            subprocess.run([sys.executable, "-m", "devloop", "eval", str(root / "lat.yaml"),
                            "--model", "openai/recorded", "--api-base", model.base_url,
                            "--no-cache", "-q", "--concurrency", "1", "--json",
                            str(root / "r.json")], env=env, capture_output=True, check=False)
            data = json.loads((root / "r.json").read_text())
            print(f"run {run}: latency ms per case", [c["latency_ms"] for c in data["cases"]])
    finally:
        model.stop()


if __name__ == "__main__":
    main()
