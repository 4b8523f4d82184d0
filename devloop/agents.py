"""Coding agents through devloop: the environment and config that point them at it.

Claude Code reads ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_AUTH_TOKEN`` and speaks the
Anthropic Messages API (``/v1/messages``); Codex CLI reads a provider from
``$CODEX_HOME/config.toml`` and speaks the Responses API (``wire_api = "responses"``).
Pure functions: the commands (devloop/commands/launch.py) print or apply them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

AGENTS = ("claude", "codex")
TOKEN_ENV = "DEVLOOP_API_KEY"  # a team key when devloop runs --team; any text otherwise
DEFAULT_TOKEN = "devloop"
CODEX_MODEL = "gpt-5-codex"
CODEX_PROVIDER = "devloop"


def client_base_url(host: str, port: int) -> str:
    """The URL a local client uses to reach a server bound to ``host``:``port``."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def claude_env(base_url: str, token: str) -> dict[str, str]:
    """What Claude Code needs: no login, no traffic but the model calls."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_config(base_url: str, model: str = CODEX_MODEL) -> str:
    """A Codex ``config.toml`` whose only provider is devloop's Responses endpoint."""
    return (
        "# Written by `devloop launch codex`: Codex talks to devloop's /v1/responses.\n"
        f"model = {toml_string(model)}\n"
        f"model_provider = {toml_string(CODEX_PROVIDER)}\n\n"
        f"[model_providers.{CODEX_PROVIDER}]\n"
        'name = "devloop"\n'
        f"base_url = {toml_string(base_url.rstrip('/') + '/v1')}\n"
        'wire_api = "responses"\n'
        f"env_key = {toml_string(TOKEN_ENV)}\n"
    )


def codex_home(devloop_home: Path) -> Path:
    return devloop_home / "codex"


def codex_env(home: Path, token: str) -> dict[str, str]:
    return {"CODEX_HOME": str(home), TOKEN_ENV: token}


def write_codex_home(home: Path, base_url: str, model: str = CODEX_MODEL) -> Path:
    """Create (or refresh) devloop's own CODEX_HOME; the user's ~/.codex is left alone."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(codex_config(base_url, model), encoding="utf-8")
    return path


def agent_env(agent: str, base_url: str, token: str, devloop_home: Path) -> dict[str, str]:
    if agent == "claude":
        return claude_env(base_url, token)
    return codex_env(codex_home(devloop_home), token)


def child_env(agent: str, extra: dict[str, str], base: dict[str, str] | None = None
              ) -> dict[str, str]:
    """The agent's environment: ours over the caller's. For Claude Code an
    ``ANTHROPIC_API_KEY`` in the caller's environment would go to devloop as a second
    credential (and Claude Code asks which to use), so it is left out."""
    env = dict(os.environ if base is None else base)
    if agent == "claude":
        env.pop("ANTHROPIC_API_KEY", None)
    env.update(extra)
    return env


def find_agent(agent: str, cwd: Path | None = None) -> str | None:
    """The agent's executable: on PATH, else in ./node_modules/.bin (npm's local install)."""
    found = shutil.which(agent)
    if found:
        return found
    local = (cwd or Path.cwd()) / "node_modules" / ".bin" / agent
    return str(local) if local.exists() else None


def shell_exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={_shell_quote(v)}\n" for k, v in env.items())


def _shell_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@%+=," for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"
