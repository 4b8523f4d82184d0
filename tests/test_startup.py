"""Must-show 9: the server starts fast because it imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
import time

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


@pytest.mark.slow
def test_serve_answers_health_within_1_5_s(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = base_env(tmp_path)
    # As installed: bytecode is written once, so later starts do not recompile every module.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", "import devloop.server.app, devloop.cli"], env=env,
                   check=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "devloop", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        elapsed = None
        while time.perf_counter() - start < 10:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    elapsed = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                time.sleep(0.01)
        assert elapsed is not None, "no /health within 10 s"
        assert elapsed < 1.5, f"/health after {elapsed:.2f}s"
        ps = httpx.get(f"http://127.0.0.1:{port}/api/ps").json()
        assert ps["models"] == []  # nothing loaded to get there
    finally:
        proc.terminate()
        proc.wait(10)
