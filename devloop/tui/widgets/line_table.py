"""A DataTable painted as one cell per row.

Textual's DataTable renders every cell through Rich on each repaint: about 0.08 ms a cell, so
a 120x40 page of ten columns costs ~30 ms a frame. Pre-laying each row out as one fixed-width
line makes that ~10 ms, which keeps a 100,000-row ledger inside the 100 ms key budget.
Columns are fixed-width (truncated with an ellipsis) and can be hidden (a narrow terminal);
the cursor, zebra stripes, scrolling and row keys are DataTable's own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

Justify = Literal["left", "right"]
Column = tuple[str, int] | tuple[str, int, Justify]
GAP = 2
ROW = "row"


def _cell(value: Any, width: int, justify: Justify) -> tuple[Text, int]:
    """The cell's text, truncated with an ellipsis, and the padding it needs on its left
    (right-justified) - padding on the right is added to the text itself."""
    text = value.copy() if isinstance(value, Text) else Text(str(value))
    text.no_wrap = True
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
        return text, 0
    if justify == "right":
        return text, width - text.cell_len
    text.pad_right(width - text.cell_len)
    return text, 0


def _end_style(text: Text) -> Any:
    """The style the text ends in: blank space after it takes the same style, so exported
    screenshots never start a styled run with spaces (some SVG renderers drop them)."""
    end = len(text)
    for span in reversed(text.spans):
        if span.end >= end and span.start < end:
            return span.style
    return text.style


class LineTable(DataTable[Text]):
    def __init__(self, columns: Sequence[Column], **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.spec: list[tuple[str, int, Justify]] = [
            (c[0], c[1], c[2] if len(c) > 2 else "left") for c in columns  # type: ignore[misc]
        ]
        self.values: dict[str, list[Any]] = {}  # row key -> the cells as given (for tests)
        self.hidden: frozenset[str] = frozenset()  # titles of the columns not drawn

    def on_mount(self) -> None:
        self._add_header()

    def _add_header(self) -> None:
        header = self.line([title for title, _, _ in self.spec])
        header.stylize("bold")
        self.add_column(header, width=header.cell_len, key=ROW)

    def width_of(self, hidden: Collection[str] = ()) -> int:
        """Cells a row takes with the ``hidden`` columns left out."""
        widths = [width for title, width, _ in self.spec if title not in hidden]
        return sum(widths) + GAP * (len(widths) - 1)

    def hide(self, titles: Collection[str]) -> None:
        """Draw every column but ``titles``: the rows are laid out again from their cells
        (no reload), the cursor stays on its row."""
        hidden = frozenset(titles)
        if hidden == self.hidden:
            return
        self.hidden = hidden
        rows, cursor = list(self.values.items()), self.cursor_row
        super().clear(columns=True)
        self._add_header()
        for key, cells in rows:
            self.add_row(self.line(cells), key=key)
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def line(self, cells: Sequence[Any]) -> Text:
        out = Text(no_wrap=True)
        previous: Any = ""
        shown = [(value, spec) for value, spec in zip(cells, self.spec, strict=True)
                 if spec[0] not in self.hidden]
        for i, (value, (_, width, justify)) in enumerate(shown):
            text, pad = _cell(value, width, justify)
            blank = (GAP if i else 0) + pad
            if blank:
                out.append(" " * blank, style=previous)
            out.append_text(text)
            previous = _end_style(text)
        return out

    def add_line(self, cells: Sequence[Any], key: str) -> RowKey:
        self.values[key] = list(cells)
        return self.add_row(self.line(cells), key=key)

    def update_line(self, key: str, cells: Sequence[Any]) -> None:
        self.values[key] = list(cells)
        self.update_cell(key, ROW, self.line(cells))

    def remove_line(self, key: str) -> None:
        self.values.pop(key, None)
        self.remove_row(key)

    def clear(self, columns: bool = False) -> LineTable:
        self.values.clear()
        super().clear(columns)
        return self

    def cells(self, key: str) -> list[str]:
        """The row's cells as plain text."""
        return [str(v) for v in self.values[key]]

    @property
    def highlighted_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
