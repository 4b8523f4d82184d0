"""`devloop eval --batch` and `--batch=auto`: a flag that also takes ``=auto`` (click cannot
say this itself without `--batch PATH` swallowing the path as the flag's value)."""

from __future__ import annotations

import click

from devloop.commands._common import fail


class BatchOptionCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        mapped = []
        for arg in args:
            if arg.startswith("--batch="):
                value = arg.split("=", 1)[1]
                if value not in ("on", "auto"):
                    fail(f"--batch: {value!r}: use --batch or --batch=auto")
                arg = "--batch" if value == "on" else "--batch-auto"
            mapped.append(arg)
        return super().parse_args(ctx, mapped)
