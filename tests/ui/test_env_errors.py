"""Issue 20, Why 3: environment problems are one devloop line and exit 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from devloop.cli import cli
from tests.helpers import ROOT, base_env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devloop", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_serve_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(["serve", "--port", str(port)], base_env(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no banner before it, no uvicorn traceback after it
    assert lines[0].startswith("devloop: error: port ") and str(port) in lines[0]
    assert "--port" in lines[0] and "Traceback" not in done.stderr
    assert "endpoint on" not in done.stderr + done.stdout


def test_unwritable_state_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["serve", "--port", "1"],
                                env={"DEVLOOP_HOME": str(blocker / "home")})
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "state folder" in result.output and "DEVLOOP_HOME" in result.output


def test_missing_weights_is_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nproduction_model: gpt-4o-mini\n"
                       "tiers:\n  embedded: {backend: embedded, model: smollm2-135m, "
                       f"model_path: {tmp_path}/gone.gguf}}\n"
                       "routes: [{tier: embedded}]\n")
    result = CliRunner().invoke(cli, ["serve", "--profile", str(profile)],
                                env={"DEVLOOP_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "weights not found" in result.output and "gone.gguf" in result.output


def test_help_documents_the_exit_status() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert "port is in use" in result.output and "2" in result.output
    assert "--ssl-certfile" in result.output and "PEM certificate" in result.output
    tui_help = CliRunner().invoke(cli, ["tui", "--help"]).output
    assert "Port of the endpoint" in tui_help and "Profile name" in tui_help


def test_binding_beyond_loopback_without_tls_warns(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import devloop.server.run as run

    monkeypatch.setattr(run, "run_server", lambda *a, **k: None)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"],
                                env={"DEVLOOP_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "warning: listening on 0.0.0.0" in result.output and "TLS" in result.output
