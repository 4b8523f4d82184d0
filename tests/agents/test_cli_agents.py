"""Claude Code and Codex CLI (from npm, pinned in package.json) through devloop, offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devloop import agents
from tests.agents.conftest import ledger
from tests.agents.upstream import CACHE_READ, CACHE_WRITE, FRONTIER_TEXT, ScriptedUpstream
from tests.helpers import ROOT, RunningServer

pytestmark = pytest.mark.slow
BIN = ROOT / "node_modules" / ".bin"


def agent_bin(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} missing: run `npm ci` (package.json pins it)"
    return str(path)


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)


def claude_env(server: RunningServer, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    base["HOME"] = str(tmp_path / "home")  # no login, no user settings
    (tmp_path / "home").mkdir(exist_ok=True)
    env = agents.child_env("claude", agents.claude_env(server.base_url, "devloop"), base)
    env["ANTHROPIC_API_KEY"] = "devloop"  # what `claude -p --bare` needs to skip login
    return env


def test_claude_code_on_embedded(agents_server: RunningServer, tmp_path: Path) -> None:
    env = claude_env(agents_server, tmp_path)
    env["ANTHROPIC_MODEL"] = "embedded"
    env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = "48"  # SmolLM2 on CPU: a short answer
    out = run([agent_bin("claude"), "-p", "Say hello in three words.", "--bare",
               "--system-prompt", "You are terse.", "--tools", ""], env, tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip()
    rows = [r for r in ledger(agents_server.db_path, endpoint="messages")
            if r["tier"] == "embedded" and r["status"] == 200 and r.get("session")]
    assert rows, "no ledger row with a session for Claude Code's call"


def test_claude_code_to_frontier_keeps_cache_control_and_betas(
        agents_server: RunningServer, scripted: ScriptedUpstream, tmp_path: Path) -> None:
    env = claude_env(agents_server, tmp_path)  # Claude Code asks for its default claude-* model
    before = len(scripted.received("/v1/messages"))
    out = run([agent_bin("claude"), "-p", "Say hello.", "--bare", "--system-prompt",
               "You are terse.", "--tools", ""], env, tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert FRONTIER_TEXT in out.stdout
    seen = scripted.received("/v1/messages")[before:]
    assert seen, "the frontier upstream received nothing"
    sent = seen[-1]
    assert "claude-code-20250219" in sent.headers["anthropic-beta"].split(",")
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["model"] == "claude-sonnet-4-6"
    assert any("cache_control" in block for block in sent.body["system"])
    assert sent.body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "thinking" in sent.body and "metadata" in sent.body
    rows = [r for r in ledger(agents_server.db_path, endpoint="messages", tier="frontier")
            if r["status"] == 200]
    assert rows
    row = rows[-1]
    assert row["cached_tokens"] == CACHE_READ
    if "cache_write_tokens" in row:  # the ledger columns from the gateway split
        assert row["cache_read_tokens"] == CACHE_READ
        assert row["cache_write_tokens"] == CACHE_WRITE
        assert row["session"]


def test_codex_exec_on_openai_compatible_tier(agents_server: RunningServer,
                                              scripted: ScriptedUpstream, tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    agents.write_codex_home(home, agents_server.base_url, "gpt-5-codex")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update(agents.codex_env(home, "devloop"))
    env["HOME"] = str(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = run([agent_bin("codex"), "exec", "--skip-git-repo-check", "Reply with a greeting."],
              env, work)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "scripted answer: " in out.stdout
    rows = [r for r in ledger(agents_server.db_path, endpoint="responses", tier="shared")
            if r["status"] == 200]
    assert rows
    sent = scripted.received("/v1/chat/completions")[-1].body
    names = [t["function"]["name"] for t in sent.get("tools") or []]
    assert "exec_command" in names  # Codex's function tools arrive; web_search was dropped
