"""The command group: every command registered from devloop/commands/, and the bare `devloop`
taking the TUI's options (--host, --port, --profile) as `devloop serve` does."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from devloop.cli import COMMANDS, cli


def test_every_command_lives_in_commands() -> None:
    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        assert module.startswith("devloop.commands."), name
        assert isinstance(getattr(importlib.import_module(module), attr), click.Command), name


def test_bare_devloop_passes_the_tui_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             embedded_profile: Path) -> None:
    seen: dict[str, Any] = {}

    def run_tui(settings: Any, profile: Any) -> int:  # stands in for the full-screen app
        seen.update(host=settings.host, port=settings.port, profile=profile.name)
        return 0

    monkeypatch.setattr("devloop.tui.app.run_tui", run_tui)
    result = CliRunner().invoke(cli, ["--host", "127.0.0.2", "--port", "9000", "--profile",
                                      str(embedded_profile)], env={"DEVLOOP_HOME": str(tmp_path)})

    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.2" and seen["port"] == 9000
    assert seen["profile"] == "embedded-only"


def test_tui_options_before_a_command_are_refused_not_dropped(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--port", "9000", "spend"],
                                env={"DEVLOOP_HOME": str(tmp_path)})

    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--port" in result.output
    assert "Traceback" not in result.output
