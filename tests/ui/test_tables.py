"""Issue 20, Why 4: CLI tables fit the terminal, cut with an ellipsis, keep every column."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from devloop.commands._output import fit_table


@pytest.mark.parametrize("width", [60, 80, 120])
def test_table_fits_with_ellipsis_and_keeps_every_column(width: int) -> None:
    headers = ["state", "tier", "backend", "model", "fallback", "detail"]
    rows = [["down", "local", "ollama", "qwen2.5-coder:1.5b-" + "x" * 30, "embedded",
             "unreachable at http://127.0.0.1:11434 (ConnectError) " + "y" * 80]]
    out = io.StringIO()
    Console(file=out, width=width, no_color=True).print(
        fit_table(headers, rows, width=width, cap=20, status=["state"]))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    assert all(h[:3] in lines[0] for h in headers)  # a header may end in an ellipsis too
    assert "…" in lines[1] and "down" in lines[1] and "local" in lines[1]


def test_without_a_width_nothing_is_cut() -> None:
    out = io.StringIO()
    Console(file=out, width=10_000, no_color=True).print(
        fit_table(["a", "b"], [["x" * 50, "y" * 300]]))
    assert "y" * 300 in out.getvalue() and "…" not in out.getvalue()
