"""Progress for long work (eval cases, check stages): a rich bar on a terminal, one plain line
per step otherwise (a log or CI keeps a record), nothing when disabled.

The same interface as the evals' first Progress: ``advance(case_id, status, cost)`` after each
case and ``note(text)`` for what happens meanwhile (a retry, a batch submitted), shown at once.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from devloop.money import format_usd

STATUS_STYLE = {"pass": "green", "ok": "green", "up": "green", "down": "red", "cached": "cyan",
                "warn": "yellow", "fail": "red", "error": "red", "ERROR": "red", "FAIL": "red",
                "PASS": "green"}


class CaseProgress:
    """Per-case progress of one labelled job (an eval set, a check of a file)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True, unit: str = "cases") -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.spent = 0.0
        self.unit = unit
        self._bar: Progress | None = None
        self._task: Any = None

    def _start(self) -> Progress:
        if self._bar is None:
            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                 BarColumn(bar_width=None), MofNCompleteColumn(),
                                 TextColumn("{task.fields[spent]}"), TimeElapsedColumn(),
                                 TextColumn("[dim]{task.fields[last]}"), console=console,
                                 transient=False, refresh_per_second=8)
            self._task = self._bar.add_task(self.label, total=self.total, spent="",
                                            last="")
            self._bar.start()
        return self._bar

    def begin(self) -> None:
        """Show the bar before the first case finishes (a slow first case is not silence)."""
        if self.enabled and self.tty:
            self._start()

    def advance(self, case_id: str, status: str, cost: float | None = None) -> None:
        self.done += 1
        self.spent += cost or 0.0
        if not self.enabled:
            return
        if self.tty:
            bar = self._start()
            style = STATUS_STYLE.get(status, "")
            bar.update(self._task, completed=self.done,
                       spent=format_usd(self.spent) if self.spent else "",
                       last=f"{case_id} [{style}]{status}[/]" if style else f"{case_id} {status}")
            if self.done >= self.total:
                self.close()
        else:
            self.stream.write(f"{self.label}: {self.done}/{self.total} {case_id} {status}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._start().console.print(f"{self.label}: {text}", highlight=False,
                                        markup=False)
        else:
            self.stream.write(f"{self.label}: {text}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
