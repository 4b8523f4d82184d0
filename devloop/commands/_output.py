"""What commands print beyond a line: tables that fit the terminal, status colour, progress.

Tables are rich tables: each column ends in an ellipsis when the terminal is too narrow, never
running into its neighbour. On a pipe (not a terminal) there is no colour and no width limit,
so a script reads whole values. Progress bars go to stderr, only on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from devloop.paths import display_path
from devloop.progress import STATUS_STYLE, CaseProgress


def stdout_console() -> Console:
    tty = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=False, width=None if tty else 10_000,
                   no_color=not tty, force_terminal=tty)


def status_text(status: str) -> Text:
    """pass/warn/fail (and ok/error/cached) in their colour."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def fit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
              right: Sequence[str] = (), status: Sequence[str] = (), title: str | None = None,
              min_widths: dict[str, int] | None = None) -> Table:
    """A table whose columns shrink with an ellipsis to fit the console; ``right`` columns are
    right-aligned (figures), ``status`` columns are coloured pass/warn/fail."""
    table = Table(title=title, box=None, header_style="bold", pad_edge=False, expand=False)
    for name in headers:
        table.add_column(name, justify="right" if name in right else "left", overflow="ellipsis",
                         no_wrap=True, min_width=(min_widths or {}).get(name))
    index = {name: i for i, name in enumerate(headers)}
    for row in rows:
        cells: list[Any] = ["" if v is None else str(v) for v in row]
        for name in status:
            cells[index[name]] = status_text(cells[index[name]])
        table.add_row(*cells)
    return table


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kwargs: Any) -> None:
    stdout_console().print(fit_table(headers, rows, **kwargs))


def progress_enabled(quiet: bool = False) -> bool:
    """Progress only on a terminal, and not with --quiet / --json."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def check_progress(checker: Any, path: Path, stages: Sequence[str],
                   enabled: bool) -> Iterator[Callable[[Any, str], None] | None]:
    """A bar per eval set file for `devloop check`: one step per draft case, then one per
    stage; yields the ``on_stage`` callback for ``Checker.check_file``."""
    if not enabled:
        yield None
        return
    from devloop.evals.evalset import load_evalset

    cases = len(load_evalset(path).cases) if "draft" in stages else 0
    total = cases + sum(1 for s in stages if s != "draft")
    bar = CaseProgress(total, f"check {display_path(path)}", unit="steps")
    checker.on_case = lambda case_id, status: bar.advance(case_id or "case", status)

    def on_stage(report: Any, stage: str) -> None:
        if stage != "draft":
            result = report.stages.get(stage)
            bar.advance(stage, str(getattr(result, "status", "done")))

    bar.begin()
    try:
        yield on_stage
    finally:
        checker.on_case = None
        bar.close()


def echo_err(text: str) -> None:
    click.echo(text, err=True)
