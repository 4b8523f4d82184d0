"""Profiles: lookup order, validation errors that name file, field and reason (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devloop.config import ConfigError, load_profile, parse_duration
from tests.helpers import base_env

GOOD = """
name: t
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: embedded}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_bundled_default_profile_loads() -> None:
    profile = load_profile("default")
    assert profile.production_model == "anthropic/claude-sonnet-4-6"
    assert set(profile.tiers) == {"local", "embedded", "shared", "frontier"}
    assert profile.tiers["local"].fallback == "embedded"
    assert profile.cache.ttl == 86400


def test_local_profiles_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "default.yaml").write_text(GOOD.replace("name: t", "name: mine"))
    monkeypatch.chdir(tmp_path)
    assert load_profile("default").name == "mine"


@pytest.mark.parametrize(("text", "field", "reason"), [
    (GOOD.replace("backend: embedded", "backend: magic"), "tiers.embedded.backend", "Input should be"),
    (GOOD.replace("routes: [{tier: embedded}]", "routes: [{tier: gpu}]"), "routes.0.tier",
     "not a configured tier"),
    (GOOD + "bogus: 1\n", "bogus", "Extra inputs"),
    (GOOD.replace("production_model: anthropic/claude-sonnet-4-5\n", ""), "production_model",
     "Field required"),
    (GOOD + "cache: {ttl: forever}\n", "cache.ttl", "not a duration"),
    (GOOD + "budgets: [{scope: planet:x, usd: 1}]\n", "budgets.0.scope", "scope must be"),
    ("name: [unclosed\n", "line 2", "invalid YAML"),
    ("- just\n- a list\n", "(top level)", "must be a mapping"),
])
def test_bad_profiles_name_file_field_reason(tmp_path: Path, text: str, field: str,
                                             reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert err.value.file == str(path)
    assert err.value.field == field
    assert reason in err.value.reason


def test_cli_refuses_bad_profile_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("backend: embedded", "backend: magic"))
    out = subprocess.run([sys.executable, "-m", "devloop", "models", "--profile", str(path)],
                         capture_output=True, text=True, env=base_env(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "tiers.embedded.backend" in lines[0]
    assert "Traceback" not in out.stderr


def test_unknown_profile_name_lists_available(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "devloop", "serve", "--profile", "nope"],
                         capture_output=True, text=True, env=base_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "default" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("30m", 1800), ("7d", 604800),
                                               ("45s", 45), ("10", 10), (5, 5)])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
