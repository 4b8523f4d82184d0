"""Issue 20, Why 2: doctor tells the truth (state, URL, reason, profile path, ports, key names)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from devloop.cli import cli
from devloop.config import load_profile, ollama_host_url

DOWN_PROFILE = """
name: down
production_model: gpt-4o-mini
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
  shared: {backend: openai, base_url: "http://no-such-host.invalid:8000/v1", model: m}
  local: {backend: ollama, model: qwen2.5-coder:1.5b, fallback: embedded}
routes: [{tier: shared}]
fallbacks: [embedded]
"""


def _doctor(tmp_path: Path, profile: Path, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", "--profile", str(profile)],
                                env={"DEVLOOP_HOME": str(tmp_path / "home"), "DEVLOOP_PORT": "1",
                                     "OLLAMA_HOST": "", **env})
    return result.exit_code, result.output


def test_a_routed_tier_that_is_down_is_not_ok_and_names_its_url(tmp_path: Path) -> None:
    profile = tmp_path / "down.yaml"
    profile.write_text(DOWN_PROFILE)
    code, out = _doctor(tmp_path, profile, OLLAMA_HOST="127.0.0.1:9", OPENAI_API_KEY="sk-secret")
    assert code == 1
    shared = next(line for line in out.splitlines() if "tier shared" in line)
    assert shared.split()[0] == "FAIL" and "DOWN" in shared
    assert "http://no-such-host.invalid:8000/v1" in shared
    local = next(line for line in out.splitlines() if "tier local" in line)
    assert "http://127.0.0.1:9" in local and "DOWN" in local  # OLLAMA_HOST honoured
    assert "fall back to embedded (up)" in local
    assert next(line for line in out.splitlines() if "tier embedded" in line).split()[0] == "ok"
    assert f"loaded from {profile}" in out
    assert "port 1 on 127.0.0.1" in out
    assert "OPENAI_API_KEY" in out and "sk-secret" not in out  # names only


def test_everything_up_exits_0(tmp_path: Path) -> None:
    profile = tmp_path / "up.yaml"
    profile.write_text("name: up\nproduction_model: gpt-4o-mini\n"
                       "tiers: {embedded: {backend: embedded, model: smollm2-135m}}\n"
                       "routes: [{tier: embedded}]\n")
    code, out = _doctor(tmp_path, profile)
    assert code == 0, out
    assert "FAIL" not in out and "all good" in out


@pytest.mark.parametrize(("value", "url"), [
    ("", "http://127.0.0.1:11434"),
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:9999", "http://gpu-box:9999"),
    ("0.0.0.0:11435", "http://0.0.0.0:11435"),
    (":8080", "http://127.0.0.1:8080"),
    ("http://example.com/ollama/", "http://example.com:11434/ollama"),
    ("https://example.com", "https://example.com:443"),
    ("[::1]:4000", "http://[::1]:4000"),
])
def test_ollama_host_forms(value: str, url: str) -> None:
    assert ollama_host_url(value) == url


def test_default_profile_local_tier_follows_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:1234")
    assert load_profile("default").tiers["local"].base_url == "http://10.0.0.5:1234"
    monkeypatch.delenv("OLLAMA_HOST")
    assert load_profile("default").tiers["local"].base_url == "http://127.0.0.1:11434"
