"""Continue.dev integration: the generated config.yaml, and Continue's own CLI (`cn`) using it.

The slow tests run the real `cn` (npm @continuedev/cli, pinned in package.json; `make test`
installs it) headless against a real `devloop serve` in both wire modes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from devloop.commands.continue_config import continue_config_cmd
from devloop.continue_config import render_continue_config
from tests.helpers import ROOT, RunningServer, base_env, start_server

CN = ROOT / "node_modules" / ".bin" / "cn"
CN_TIMEOUT_S = 240

# cn checks api.continue.dev for a newer version on start-up and has no switch for it; this
# preload refuses every fetch that is not loopback (or a data: URL it loads wasm from), so the
# test stays offline and never depends on how a blocked DNS lookup behaves.
OFFLINE_GUARD_JS = """\
const allowed = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
const realFetch = globalThis.fetch;
globalThis.fetch = function (input, init) {
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  if (url.protocol === "data:" || allowed.has(url.hostname)) return realFetch(input, init);
  return Promise.reject(new TypeError("offline: blocked fetch to " + url.host));
};
"""

# Tools that touch the machine: a stray tool call from a tiny model must not run them.
EXCLUDED_TOOLS = ("Bash", "Fetch", "Write", "Edit", "MultiEdit")


def load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


# -- the config itself (fast) -------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "api_base"), [
    ("openai", "http://127.0.0.1:8790/v1"),
    ("ollama", "http://127.0.0.1:8790"),
])
def test_config_points_every_model_at_devloop(provider: str, api_base: str) -> None:
    config = load(render_continue_config(
        "http://127.0.0.1:8790/", provider,  # type: ignore[arg-type]
        [("devloop auto", "auto"), ("devloop local", "local")]))

    assert (config["name"], config["schema"]) == ("devloop", "v1")
    assert config["version"]
    models = config["models"]
    assert [m["model"] for m in models] == ["auto", "local", "local"]
    assert {m["provider"] for m in models} == {provider}
    assert {m["apiBase"] for m in models} == {api_base}
    assert models[0]["roles"] == ["chat", "edit", "apply"]
    autocomplete = models[-1]
    assert autocomplete["roles"] == ["autocomplete"]
    assert autocomplete["autocompleteOptions"]["debounceDelay"] > 0
    assert autocomplete["defaultCompletionOptions"]["maxTokens"] <= 256
    assert autocomplete["requestOptions"]["headers"]["X-Devloop-Feature"] == "continue-autocomplete"
    # The OpenAI SDK inside Continue needs some key; Ollama's client needs none.
    assert ("apiKey" in models[0]) == (provider == "openai")


def test_config_carries_team_key_and_keeps_base_path() -> None:
    config = load(render_continue_config("https://gw.example:9000/devloop", "ollama",
                                         [("devloop auto", "auto")], api_key="dl-123"))
    (chat, autocomplete) = config["models"]
    assert chat["apiBase"] == "https://gw.example:9000/devloop/"
    assert chat["apiKey"] == autocomplete["apiKey"] == "dl-123"
    assert autocomplete["model"] == "auto"


@pytest.mark.parametrize("bad", ["127.0.0.1:8790", "ftp://host", "http://"])
def test_config_refuses_a_base_url_that_is_not_http(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        render_continue_config(bad, "openai", [("devloop auto", "auto")])


def test_command_lists_auto_then_each_tier(embedded_profile: Path) -> None:
    result = CliRunner().invoke(continue_config_cmd, [
        "--profile", str(embedded_profile), "--base-url", "http://127.0.0.1:1234"])

    assert result.exit_code == 0, result.output
    models = load(result.output)["models"]
    assert [m["model"] for m in models] == ["auto", "local", "embedded", "qwen2.5-coder:1.5b"]
    assert models[-1]["roles"] == ["autocomplete"]


def test_command_default_base_url_follows_settings(embedded_profile: Path) -> None:
    result = CliRunner().invoke(continue_config_cmd, ["--profile", str(embedded_profile)],
                                env={"DEVLOOP_HOST": "0.0.0.0", "DEVLOOP_PORT": "9911"})

    assert result.exit_code == 0, result.output
    assert load(result.output)["models"][0]["apiBase"] == "http://127.0.0.1:9911/v1"


def test_command_port_names_the_endpoint(embedded_profile: Path) -> None:
    """`--port` like every other command that names the endpoint (it beats DEVLOOP_PORT)."""
    result = CliRunner().invoke(continue_config_cmd, ["--profile", str(embedded_profile),
                                                      "--port", "9912"],
                                env={"DEVLOOP_PORT": "9911"})

    assert result.exit_code == 0, result.output
    assert load(result.output)["models"][0]["apiBase"] == "http://127.0.0.1:9912/v1"


@pytest.mark.parametrize(("args", "env", "names"), [
    (["--base-url", "localhost:8790"], {}, "--base-url"),
    (["--profile", "no-such-profile"], {}, "no-such-profile"),
    ([], {"DEVLOOP_PORT": "eighty"}, "DEVLOOP_PORT"),
    (["--port", "9000", "--base-url", "http://127.0.0.1:1"], {}, "--port"),
])
def test_command_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str],
                                                  names: str) -> None:
    result = CliRunner().invoke(continue_config_cmd, args, env=env)

    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and names in result.output
    assert "Traceback" not in result.output


# -- Continue's CLI against a running devloop (slow) --------------------------------------------

@pytest.fixture(scope="module")
def cn_binary() -> Path:
    if not CN.exists():
        pytest.fail(f"{CN.relative_to(ROOT)} is missing: run `make test` (or `npm ci` in {ROOT}) "
                    "to install the pinned @continuedev/cli from package-lock.json")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the Continue CLI needs Node.js 20 or newer")
    return CN


@pytest.fixture(scope="module")
def continue_server(tmp_path_factory: pytest.TempPathFactory,
                    embedded_profile: Path) -> Iterator[RunningServer]:
    server = start_server(embedded_profile, tmp_path_factory.mktemp("continue-home"))
    yield server
    server.stop()


def cn_env(home: Path, guard: Path) -> dict[str, str]:
    """Only what cn needs: a throwaway HOME (never the user's ~/.continue), no telemetry."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "TMPDIR") if key in os.environ}
    env.update({
        "HOME": str(home),
        "USERPROFILE": str(home),
        "CONTINUE_GLOBAL_DIR": str(home / ".continue"),
        "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
        "CONTINUE_METRICS_ENABLED": "0",
        "FORCE_NO_TTY": "true",
        "NO_COLOR": "1",
        "NODE_OPTIONS": f"--require {guard}",
    })
    return env


def continue_calls(server: RunningServer) -> int:
    """Calls in the server's ledger attributed to the `continue` feature."""
    spend = subprocess.run([sys.executable, "-m", "devloop", "spend", "--json", "--by", "feature"],
                           cwd=ROOT, env=base_env(server.home), capture_output=True, text=True,
                           timeout=60)
    assert spend.returncode == 0, spend.stderr
    groups = json.loads(spend.stdout)["groups"]
    return sum(int(g["calls"]) for g in groups if g["key"] == "continue")


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_continue_cli_answers_through_devloop(provider: str, cn_binary: Path,
                                              continue_server: RunningServer,
                                              embedded_profile: Path, tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "devloop", "continue-config", "--provider", provider,
         "--base-url", continue_server.base_url, "--profile", str(embedded_profile)],
        cwd=ROOT, env=base_env(continue_server.home), capture_output=True, text=True,
        timeout=60)
    assert printed.returncode == 0, printed.stderr
    config_file = tmp_path / "config.yaml"
    config_file.write_text(printed.stdout)
    guard = tmp_path / "offline-guard.cjs"
    guard.write_text(OFFLINE_GUARD_JS)
    # An empty working directory: cn indexes it and describes it in its system prompt.
    workdir = tmp_path / "work"
    workdir.mkdir()

    calls_before = continue_calls(continue_server)

    command = [str(cn_binary), "-p", "Say hello", "--config", str(config_file)]
    for tool in EXCLUDED_TOOLS:
        command += ["--exclude", tool]
    run = subprocess.run(command, cwd=workdir, env=cn_env(tmp_path / "home", guard),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=CN_TIMEOUT_S)

    detail = (f"cn exit {run.returncode}\nstdout: {run.stdout}\nstderr: {run.stderr}\n"
              f"server log:\n{continue_server.output()[-3000:]}")
    assert run.returncode == 0, detail
    assert run.stdout.strip(), detail
    assert '"status":"error"' not in run.stdout + run.stderr, detail
    # The answer came through devloop, attributed to Continue by the config's header.
    assert continue_calls(continue_server) > calls_before
