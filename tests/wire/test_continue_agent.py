"""Must-show 3: the Continue CLI in agent mode, both provider modes, through devloop to a
tool-capable upstream: asked to read a file in its folder, it calls its Read tool and answers
with the file's content (the scripted upstream answers a tool result by quoting it)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, RunningServer, base_env, start_server, write_profile
from tests.test_continue import CN, CN_TIMEOUT_S, EXCLUDED_TOOLS, OFFLINE_GUARD_JS, cn_env
from tests.wire.scripted import ScriptedUpstream

pytestmark = pytest.mark.slow

PROFILE = """
name: agent
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:  {{backend: ollama, model: "scripted:latest", base_url: "{url}"}}
  shared: {{backend: openai, base_url: "{url}/v1", model: scripted-model}}
routes:
  - {{tier: {tier}}}
fallbacks: []
cache: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as scripted:
        yield scripted


@pytest.mark.parametrize(("provider", "tier"), [("openai", "shared"), ("ollama", "local")])
def test_continue_agent_reads_a_file_through_devloop(
        provider: str, tier: str, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    if not CN.exists():
        pytest.fail("node_modules/.bin/cn is missing: run `npm ci`")
    profile = write_profile(tmp_path / "agent.yaml", PROFILE.format(url=upstream.url, tier=tier))
    server: RunningServer = start_server(profile, tmp_path / "home")
    try:
        printed = subprocess.run(
            [sys.executable, "-m", "devloop", "continue-config", "--provider", provider,
             "--base-url", server.base_url, "--profile", str(profile)],
            cwd=ROOT, env=base_env(server.home), capture_output=True, text=True, timeout=60)
        assert printed.returncode == 0, printed.stderr
        config = tmp_path / "config.yaml"
        config.write_text(printed.stdout)
        guard = tmp_path / "guard.cjs"
        guard.write_text(OFFLINE_GUARD_JS)
        work = tmp_path / "work"
        work.mkdir()
        secret = f"the-answer-is-{uuid.uuid4().hex[:10]}"
        (work / "notes.txt").write_text(secret + "\n")
        before = len(upstream.seen)
        command = [str(CN), "-p", "Read the file notes.txt and tell me what it says.",
                   "--config", str(config), "--auto"]
        for tool in EXCLUDED_TOOLS:
            command += ["--exclude", tool]
        run = subprocess.run(command, cwd=work, env=cn_env(tmp_path / "cnhome", guard),
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=CN_TIMEOUT_S)
        detail = (f"cn exit {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}\n"
                  f"server log:\n{server.output()[-3000:]}")
        assert run.returncode == 0, detail
        assert secret in run.stdout, detail
        sent = [s.body for s in upstream.seen[before:]]
        # the second model call carried the Read tool's result for the call the first made
        results = [m for b in sent for m in b.get("messages", []) if m.get("role") == "tool"]
        assert results and secret in str(results[-1].get("content")), detail
    finally:
        server.stop()
