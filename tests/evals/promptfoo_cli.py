"""The real promptfoo CLI, installed from npm on first use into a cache folder (pinned), and run
offline: every provider points at a loopback model, telemetry, update checks and sharing off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROMPTFOO_VERSION = "0.115.0"  # the only 0.115.x release on npm


def promptfoo_root() -> Path:
    default = Path.home() / ".cache" / "devloop-tests" / f"promptfoo-{PROMPTFOO_VERSION}"
    return Path(os.environ.get("DEVLOOP_PROMPTFOO_DIR", default))


def promptfoo_bin() -> Path:
    """node_modules/.bin/promptfoo, installed with npm when it is not there yet."""
    root = promptfoo_root()
    binary = root / "node_modules" / ".bin" / "promptfoo"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("the promptfoo parity test needs node and npm on PATH")
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "PUPPETEER_SKIP_DOWNLOAD": "1"}
    done = subprocess.run(
        [npm, "install", "--prefix", str(root), f"promptfoo@{PROMPTFOO_VERSION}", "--no-audit",
         "--no-fund"], env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0 or not binary.exists():
        pytest.fail(f"npm install promptfoo@{PROMPTFOO_VERSION} failed: {done.stderr[-2000:]}")
    return binary


def offline_env(home: Path, base_url: str) -> dict[str, str]:
    """promptfoo with nothing reaching out: loopback providers, no telemetry or updates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update({
        "HOME": str(home), "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_DISABLE_REDTEAM_REMOTE_GENERATION": "1",
        "PROMPTFOO_DISABLE_SHARE_EMAIL_REQUEST": "1", "PROMPTFOO_CACHE_ENABLED": "false",
        "PROMPTFOO_PYTHON": sys.executable, "OPENAI_API_KEY": "sk-loopback",
        "OPENAI_BASE_URL": base_url, "OPENAI_API_BASE_URL": base_url, "NO_COLOR": "1",
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def run_promptfoo(config: Path, out: Path, home: Path, base_url: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(promptfoo_bin()), "eval", "--no-cache", "--no-table",
         "--no-progress-bar", "-c", str(config), "-o", str(out)],
        cwd=config.parent, env=offline_env(home, base_url), capture_output=True, text=True,
        timeout=600, check=False)
    if not out.exists():
        pytest.fail(f"promptfoo eval wrote no results (exit {done.returncode}): "
                    f"{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return json.loads(out.read_text())


def promptfoo_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    body = report.get("results", report)
    return body["results"] if isinstance(body, dict) else body
