"""Issue 20, Why 6: what the README quotes is what the commands print (scratch home)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from devloop.cli import COMMANDS, cli
from devloop.config import Settings
from devloop.server.http import header_cache
from tests.tui.seed import seed_calls

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _run(args: list[str], home: Path) -> str:
    result = CliRunner().invoke(cli, args, env={"DEVLOOP_HOME": str(home), "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_in_the_readme_and_the_help_lists_it_whole(tmp_path: Path) -> None:
    listed = set(re.findall(r"^\| `devloop ([a-z-]+)", README, re.M))
    assert set(COMMANDS) - {"tui"} <= listed, set(COMMANDS) - listed
    text = _run(["--help"], tmp_path)
    assert "..." not in text.split("Commands:")[1]  # no summary cut off
    for name in COMMANDS:
        assert f"\n  {name} " in text


def test_continue_tags_are_the_ones_the_readme_names(tmp_path: Path) -> None:
    out = _run(["continue-config", "--provider", "openai"], tmp_path)
    tags = set(re.findall(r"X-Devloop-Feature: (\S+)", out))
    assert tags == {"continue", "continue-autocomplete"}
    assert "X-Devloop-Feature: continue`, tab-autocomplete\n`continue-autocomplete`" in README


def test_cache_header_in_the_example_is_one_the_server_sends() -> None:
    shown = re.findall(r"^x-devloop-cache: (\S+)", README, re.M)
    sendable = {header_cache(s) for s in ("hit", "miss", "bypass", "off")}
    assert shown and set(shown) <= sendable and "off" not in sendable


def test_spend_by_feature_json_has_prefix_stability_as_the_readme_says(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    seed_calls(home / "devloop.db", 60, days=3)
    report = json.loads(_run(["spend", "--since", "all", "--by", "feature", "--json"], home))
    assert any(g.get("prefix_stability") is not None for g in report["groups"])
    assert "`--by feature --json` adds how stable" in README


def test_spend_on_an_empty_home(tmp_path: Path) -> None:
    out = _run(["spend"], tmp_path / "empty")
    assert "$0" in out or "no calls" in out


def test_keys_revoke_timing_matches_the_readme(tmp_path: Path) -> None:
    _run(["keys", "create", "alice"], tmp_path)
    out = _run(["keys", "revoke", "alice"], tmp_path)
    assert "DEVLOOP_TEAM_KEY_REFRESH_S" in out and "default 1 s" in out
    assert Settings().team_key_refresh_s == 1.0
    assert "`DEVLOOP_TEAM_KEY_REFRESH_S`\n(default 1 s)" in README


def test_help_texts_the_issue_named(tmp_path: Path) -> None:
    assert "PEM certificate" in _run(["serve", "--help"], tmp_path)
    for cmd in ("models", "doctor"):
        assert "Profile name or YAML path" in _run([cmd, "--help"], tmp_path)
    eval_help = _run(["eval", "--help"], tmp_path)
    assert "Exit status: 0" in eval_help and "2 a bad file" in eval_help
