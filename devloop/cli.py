"""The command line: thin, it parses, calls the core and prints.

Subcommands load lazily so `devloop serve` does not import the TUI, litellm or torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from devloop.config import ConfigError, Profile, Settings, load_profile

COMMANDS = {
    "serve": "devloop.commands.serve:serve",
    "tui": "devloop.commands.serve:tui",
    "models": "devloop.commands.info:models",
    "doctor": "devloop.commands.info:doctor",
    "continue-config": "devloop.continue_config:continue_config_cmd",
    "spend": "devloop.commands.spend:spend",
    "keys": "devloop.commands.keys:keys",
    "check": "devloop.pipeline.cli:check",
    "watch": "devloop.pipeline.cli:watch",
    "eval": "devloop.evals.cli:eval_cmd",
    "launch": "devloop.commands.launch:launch",
    "agent-config": "devloop.commands.launch:agent_config",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            cmd: click.Command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"command {name!r} is not available: {exc}") from None
        return cmd


def fail(message: str) -> None:
    """One line on stderr, exit 2: the contract for user mistakes."""
    click.echo(f"devloop: error: {message}", err=True)
    sys.exit(2)


def load(profile: str | None = None, **overrides: Any) -> tuple[Settings, Profile]:
    """Settings from the environment (plus CLI overrides) and the chosen profile."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        if profile:
            settings.profile = profile
        return settings, load_profile(settings.profile)
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="devloop")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """devloop: a local-first LLM endpoint, spend ledger and prompt promotion ladder.

    With no command, opens the TUI, which also serves the endpoint.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(LazyGroup.get_command(cli, ctx, "tui"))  # type: ignore[arg-type, union-attr]


def main() -> None:
    cli(prog_name="devloop")


if __name__ == "__main__":
    main()
