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
              width: int | None = None, cap: int = 24) -> Table:
    """A table that fits ``width`` cells: the widest column gives way first (ellipsis), the
    others keep up to ``cap`` cells (then an ellipsis too); ``right`` columns are
    right-aligned (figures), ``status`` columns are coloured pass/warn/fail."""
    text_rows = [["" if v is None else str(v) for v in row] for row in rows]
    natural = [max([len(h), *(len(r[i]) for r in text_rows)]) for i, h in enumerate(headers)]
    sizes = list(natural)
    if width is not None and headers:
        room = width - 2 * (len(headers) - 1)  # two spaces between columns
        flex = max(range(len(headers)), key=lambda i: natural[i])
        for i in range(len(headers)):
            if i != flex:
                sizes[i] = min(natural[i], cap)
        sizes[flex] = max(4, min(natural[flex], room - (sum(sizes) - sizes[flex])))
    table = Table(title=title, box=None, header_style="bold", pad_edge=False, expand=False,
                  padding=(0, 2, 0, 0), collapse_padding=True)
    for i, name in enumerate(headers):
        table.add_column(name, justify="right" if name in right else "left", overflow="ellipsis",
                         no_wrap=True, width=sizes[i], max_width=sizes[i])
    index = {name: i for i, name in enumerate(headers)}
    for row in text_rows:
        cells: list[Any] = list(row)
        for name in status:
            cells[index[name]] = status_text(cells[index[name]])
        table.add_row(*cells)
    return table


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kwargs: Any) -> None:
    console = stdout_console()
    width = console.width if sys.stdout.isatty() else None
    console.print(fit_table(headers, rows, width=width, **kwargs))


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
