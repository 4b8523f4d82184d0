"""The command line: thin, it parses, calls the core and prints.

Subcommands load lazily so `devloop serve` does not import the TUI, litellm or torch.
"""

from __future__ import annotations

import importlib

import click

COMMANDS = {
    "serve": "devloop.commands.serve:serve",
    "tui": "devloop.commands.serve:tui",
    "models": "devloop.commands.info:models",
    "doctor": "devloop.commands.info:doctor",
    "continue-config": "devloop.commands.continue_config:continue_config_cmd",
    "spend": "devloop.commands.spend:spend",
    "keys": "devloop.commands.keys:keys",
    "check": "devloop.commands.check:check",
    "watch": "devloop.commands.check:watch",
    "eval": "devloop.commands.eval:eval_cmd",
    "launch": "devloop.commands.launch:launch",
    "agent-config": "devloop.commands.launch:agent_config",
    "audit": "devloop.commands.audit:audit",
    "alerts": "devloop.commands.alerts:alerts",
    "batches": "devloop.commands.batches:batches",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's whole first sentence, wrapped (click cuts it to the width with ...)."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=200)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="devloop")
@click.option("--host", default=None, help="[TUI] Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="[TUI] Port (default 8790).")
@click.option("--profile", default=None, help="[TUI] Profile name or YAML path.")
@click.option("--verbose", "-v", is_flag=True, default=False,
              help="Also print logs and library warnings on stderr (they always go to "
                   "$DEVLOOP_HOME/devloop.log). Or set DEVLOOP_VERBOSE=1.")
@click.pass_context
def cli(ctx: click.Context, host: str | None, port: int | None, profile: str | None,
        verbose: bool) -> None:
    """devloop: a local-first LLM endpoint, spend ledger and prompt promotion ladder.

    With no command, opens the TUI, which also serves the endpoint (it takes --host, --port
    and --profile as `devloop serve` does).
    """
    from devloop.logfile import setup_logging, verbose_from_env

    setup_logging(verbose=verbose or verbose_from_env())
    given = {"--host": host, "--port": port, "--profile": profile}
    if ctx.invoked_subcommand is None:
        tui = LazyGroup.get_command(cli, ctx, "tui")
        ctx.invoke(tui, host=host, port=port, profile=profile)  # type: ignore[arg-type]
        return
    for name, value in given.items():
        if value is not None:  # honoured for the TUI only: refuse rather than drop it
            from devloop.commands._common import fail

            fail(f"{name}: goes after the command here (`devloop {ctx.invoked_subcommand} "
                 f"{name} ...`); before it, it is the TUI's")


def main() -> None:
    cli(prog_name="devloop")


if __name__ == "__main__":
    main()
