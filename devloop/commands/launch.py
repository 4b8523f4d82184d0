"""`devloop launch claude|codex [ARGS...]` and `devloop agent-config claude|codex`."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

import click

from devloop import agents
from devloop.commands._common import fail, load


def _base(url: str | None) -> tuple[str, str]:
    settings, _ = load()
    return (url or agents.client_base_url(settings.host, settings.port)).rstrip("/"), str(settings.home)


def _token(token: str | None) -> str:
    return token or os.environ.get(agents.TOKEN_ENV) or agents.DEFAULT_TOKEN


AGENT = click.Choice(agents.AGENTS)
URL = click.option("--url", default=None, metavar="URL",
                   help="devloop's address [default: http://DEVLOOP_HOST:DEVLOOP_PORT].")
TOKEN = click.option("--token", default=None, metavar="KEY",
                     help=f"A team key for devloop --team [default: ${agents.TOKEN_ENV}].")
MODEL = click.option("--model", default=agents.CODEX_MODEL, show_default=True,
                     help="The model name Codex sends (the profile resolves it).")


@click.command("agent-config")
@click.argument("agent", type=AGENT)
@URL
@TOKEN
@MODEL
def agent_config(agent: str, url: str | None, token: str | None, model: str) -> None:
    """Print the environment (and Codex's config.toml) that points AGENT at devloop."""
    from pathlib import Path

    base, home = _base(url)
    env = agents.agent_env(agent, base, _token(token), Path(home))
    if agent == "codex":
        path = agents.codex_home(Path(home)) / "config.toml"
        click.echo(f"# {path} (written by `devloop launch codex`)")
        click.echo(agents.codex_config(base, model))
    click.echo(agents.shell_exports(env), nl=False)


@click.command("launch", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.argument("agent", type=AGENT)
@URL
@TOKEN
@MODEL
@click.option("--bin", "binary", default=None, metavar="PATH",
              help="The agent's executable [default: on PATH, else ./node_modules/.bin].")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def launch(agent: str, url: str | None, token: str | None, model: str, binary: str | None,
           args: tuple[str, ...]) -> None:
    """Run AGENT (claude or codex) with ARGS, its model calls going through devloop.

    devloop's own options come before AGENT; everything after it goes to the agent:
    `devloop launch claude -p "fix the test" --model claude-haiku-4-5`.
    """
    from pathlib import Path

    base, home = _base(url)
    try:
        with urllib.request.urlopen(base + "/health", timeout=2.0):  # noqa: S310 - a URL we built
            pass
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"devloop is not answering at {base} ({type(exc).__name__}); start `devloop serve` "
             "or the TUI first, or pass --url")
    exe = binary or agents.find_agent(agent)
    if exe is None:
        pkg = "@anthropic-ai/claude-code" if agent == "claude" else "@openai/codex"
        fail(f"{agent}: not found on PATH or in ./node_modules/.bin; install it with "
             f"`npm install -g {pkg}` or pass --bin")
        return
    if agent == "codex":
        agents.write_codex_home(agents.codex_home(Path(home)), base, model)
    env = agents.child_env(agent, agents.agent_env(agent, base, _token(token), Path(home)))
    sys.stdout.flush()
    try:
        os.execvpe(exe, [exe, *args], env)
    except OSError as exc:
        fail(f"{exe}: cannot run: {exc.strerror or exc}")
