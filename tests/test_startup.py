"""Must-show 9: the server starts fast because it imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import base_env, free_port


def test_server_imports_neither_textual_nor_litellm() -> None:
    code = (
        "import sys, json\n"
        "import devloop.server, devloop.server.app, devloop.gateway, devloop.cli\n"
        "from devloop.config import Settings, load_profile\n"
        "from devloop.server.app import create_app\n"
        "create_app(Settings(), load_profile('default'))\n"
        "heavy = ['textual', 'litellm', 'torch', 'transformers', 'llmlingua', 'llama_cpp']\n"
        "print(json.dumps({m: m in sys.modules for m in heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == dict.fromkeys(loaded, False), loaded


# Native libraries of the models and the TUI: none is mapped into a server that only started.
HEAVY_LIBRARIES = ("libllama", "libggml", "libtorch", "llama_cpp", "torch/lib", "tokenizers")


@pytest.mark.slow
def test_serve_answers_health_before_any_model_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What the start-up figure rests on, asserted without a clock (the figure itself is
    scripts/bench_startup.py's): /health answers while no model is loaded and no model
    library is even mapped into the process."""
    port = free_port()
    env = base_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "devloop", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        health = None
        for _ in range(600):  # a hang guard, not a timing: the test asserts no duration
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, "devloop serve exited"
                time.sleep(0.1)
        assert health is not None and health.status_code == 200
        assert health.json()["in_flight"] == 0
        ps = httpx.get(f"http://127.0.0.1:{port}/api/ps").json()
        assert ps["models"] == []  # nothing loaded to get there
        mapped = Path(f"/proc/{proc.pid}/maps").read_text()
        loaded = [lib for lib in HEAVY_LIBRARIES if lib in mapped]
        assert loaded == [], f"model libraries loaded at start: {loaded}"
    finally:
        proc.terminate()
        proc.wait(10)
