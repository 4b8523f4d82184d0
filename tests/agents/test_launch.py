"""`devloop agent-config` and `devloop launch` (with a stand-in agent that prints its env)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import ROOT, RunningServer, base_env


def devloop(args: list[str], home: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    full = base_env(home)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "devloop", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)


def test_agent_config_claude(tmp_path: Path) -> None:
    out = devloop(["agent-config", "claude", "--url", "http://127.0.0.1:9999"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:9999\n" in out.stdout
    assert "export ANTHROPIC_AUTH_TOKEN=devloop\n" in out.stdout


def test_agent_config_codex(tmp_path: Path) -> None:
    out = devloop(["agent-config", "codex"], tmp_path, {"DEVLOOP_PORT": "8123"})
    assert out.returncode == 0, out.stderr
    assert 'base_url = "http://127.0.0.1:8123/v1"' in out.stdout
    assert 'wire_api = "responses"' in out.stdout
    assert f"export CODEX_HOME={tmp_path / 'codex'}" in out.stdout


def stand_in(tmp_path: Path) -> Path:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho ARGS=\"$*\"\necho BASE=$ANTHROPIC_BASE_URL\n"
                      "echo TOKEN=$ANTHROPIC_AUTH_TOKEN\necho KEY=${ANTHROPIC_API_KEY-unset}\n"
                      "echo CODEX_HOME=$CODEX_HOME\n")
    script.chmod(0o755)
    return script


def test_launch_claude_runs_the_agent_with_devloops_env(agents_server: RunningServer,
                                                        tmp_path: Path) -> None:
    out = devloop(["launch", "--url", agents_server.base_url, "--bin",
                   str(stand_in(tmp_path)), "claude", "-p", "hi there", "--bare"], tmp_path,
                  {"ANTHROPIC_API_KEY": "sk-real-key"})
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert lines["ARGS"] == "-p hi there --bare"
    assert lines["BASE"] == agents_server.base_url
    assert lines["TOKEN"] == "devloop"
    assert lines["KEY"] == "unset"  # the provider key stays with devloop, not the agent


def test_launch_codex_writes_its_own_codex_home(agents_server: RunningServer,
                                                tmp_path: Path) -> None:
    home = tmp_path / "dl"
    out = devloop(["launch", "--url", agents_server.base_url, "--bin",
                   str(stand_in(tmp_path)), "codex", "exec", "hi"], home)
    assert out.returncode == 0, out.stderr
    codex_home = home / "codex"
    assert f"CODEX_HOME={codex_home}" in out.stdout
    config = (codex_home / "config.toml").read_text()
    assert f'base_url = "{agents_server.base_url}/v1"' in config
    assert 'model_provider = "devloop"' in config


def test_launch_fails_in_one_line_when_devloop_is_down(tmp_path: Path) -> None:
    out = devloop(["launch", "--url", "http://127.0.0.1:9", "--bin", "/bin/true", "claude"],
                  tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("devloop: error: devloop is not answering at http://127.0.0.1:9")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_spend_by_session(agents_server: RunningServer) -> None:
    for session in ("sess-a", "sess-a", "sess-b"):
        resp = httpx.post(agents_server.base_url + "/v1/messages", timeout=60,
                          headers={"X-Claude-Code-Session-Id": session},
                          json={"model": "shared", "max_tokens": 8,
                                "messages": [{"role": "user", "content": f"hi {session}"}]})
        assert resp.status_code == 200, resp.text
    out = devloop(["spend", "--by", "session", "--json"], agents_server.home)
    assert out.returncode == 0, out.stderr
    groups = {g["key"]: g for g in json.loads(out.stdout)["groups"]}
    assert groups["sess-a"]["calls"] == 2 and groups["sess-b"]["calls"] == 1
