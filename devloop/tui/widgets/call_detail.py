"""The detail pane of one ledger row: why it was routed where it was, and what it cost."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from devloop.tui.formatting import millis, stamp, usd


def _tokens_line(row: dict[str, Any]) -> str:
    line = f"{row.get('prompt_tokens') or 0} in, {row.get('completion_tokens') or 0} out"
    if row.get("cached_tokens"):
        line += f", {row['cached_tokens']} cached"
    if row.get("tokens_counted"):
        line += " (counted: upstream gave none)"
    return line


def call_table(row: dict[str, Any], across: int = 1) -> Table:
    """The fields as label/value pairs, ``across`` pairs a line (filled column by column)."""
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in range(across):
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
    status = Text(str(row.get("status")), style="green" if row.get("status") == 200 else "red")
    if row.get("error"):
        status.append(f"  {row['error']}", style="red")
    saved = row.get("saved_usd")
    lines: list[tuple[str, Any]] = [
        ("Route", Text(row.get("route_reason") or "-", style="italic")),
        ("Tier", f"{row.get('tier')} via {row.get('backend')} · {row.get('model')}"),
        ("Cache", row.get("cache") or "-"),
        ("Tokens", _tokens_line(row)),
        ("Cost", f"{usd(row.get('cost_usd'))} actual · {usd(row.get('counterfactual_usd'))} at "
                 f"{row.get('production_model') or 'production'}"),
        ("Saved", Text(usd(saved), style="bold green" if (saved or 0) > 0 else "bold")),
        ("Latency", f"{millis(row.get('latency_ms'))}"
                    + (f" · first token {millis(row['ttft_ms'])}" if row.get("ttft_ms") else "")
                    + (" · stream" if row.get("stream") else "")),
        ("Status", status),
        ("When", stamp(row.get("ts"))),
        ("Endpoint", row.get("endpoint") or "-"),
        ("Feature", row.get("feature") or "-"),
        ("User", " · ".join(x for x in (row.get("user"), row.get("key_id")) if x) or "-"),
        ("Request", row.get("request_id") or "-"),
        ("Prompt", " · ".join(f"{k} {row[k]}" for k in ("prompt_hash", "prefix_hash")
                              if row.get(k)) or "-"),
    ]
    if row.get("queue_wait_ms"):
        lines.append(("Queue", f"position {row.get('queue_position')}, waited "
                               f"{millis(row['queue_wait_ms'])}"))
    height = -(-len(lines) // across)
    for i in range(height):
        cells: list[Any] = []
        for label, value in lines[i::height]:
            cells += [label, value]
        grid.add_row(*cells)
    return grid


class CallDetail(Static):
    """Below the calls table: two pairs a line once it is at least WIDE_CELLS wide."""

    WIDE_CELLS = 100

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.row: dict[str, Any] | None = None

    def show(self, row: dict[str, Any] | None) -> None:
        self.row = row
        if row is None:
            self.update(Text("Select a call to see its route, tokens and cost.", style="dim"))
        else:
            self.update(call_table(row, 2 if self.size.width >= self.WIDE_CELLS else 1))

    def on_resize(self) -> None:
        self.show(self.row)
