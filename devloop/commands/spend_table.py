"""`devloop spend`'s table, fitted to the terminal. No click here: spend.py echoes the lines.

With room (or on a pipe, where a script reads whole values) the table is the full one, every
column at its usual width. In a narrower terminal each column takes only the width its
values need, under short headers, and the lowest-value columns are dropped until it fits:
the production model the would-cost was priced at moves to the heading line, and a footnote
names what was left out (`--json` and `--csv` always have everything).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devloop.commands.spend_views import rate
from devloop.money import format_usd

Row = dict[str, Any]
GAP = 2
KEY_WIDTH = 22  # the full table's key column (21 characters and a space)
MIN_KEY = 16  # a group's name stays readable: columns are dropped before it is cut shorter


@dataclass(frozen=True, slots=True)
class SpendColumn:
    header: str
    short: str  # the header in a narrow terminal
    width: int  # in the full table (right-aligned)
    keep: int  # lower is dropped first when the terminal is narrow
    cell: Callable[[Row], str]


COLUMNS = [
    SpendColumn("calls", "calls", 7, 90, lambda r: str(r["calls"])),
    SpendColumn("tokens in", "in", 11, 30, lambda r: str(r["prompt_tokens"])),
    SpendColumn("tokens out", "out", 11, 25, lambda r: str(r["completion_tokens"])),
    SpendColumn("spent", "spent", 12, 85, lambda r: format_usd(r["cost_usd"])),
    SpendColumn("would cost", "would", 12, 70, lambda r: format_usd(r["counterfactual_usd"])),
    SpendColumn("saved", "saved", 12, 95, lambda r: format_usd(r["saved_usd"])),
    SpendColumn("cache", "cache", 7, 60, lambda r: f"{r['cache_hit_rate']:.0%}"),
    SpendColumn("local", "local", 7, 50, lambda r: f"{r['local_share']:.0%}"),
    SpendColumn("p-cache", "p-cache", 8, 65, lambda r: rate(r.get("provider_cache_hit_rate"))),
    SpendColumn("refused", "refus", 8, 20, lambda r: str(r.get("refused_calls", 0))),
    SpendColumn("failed", "fail", 7, 40, lambda r: str(r.get("failed_calls", 0))),
    SpendColumn("retries", "retry", 8, 10, lambda r: str(r.get("retries", 0))),
]
MODEL_HEADER = "would-cost model"


def spend_lines(report: dict[str, Any], by: str | None, production_model: str,
                width: int | None) -> list[str]:
    """The heading, the table (groups, then TOTAL) and footnotes, in ``width`` cells (None:
    no limit)."""
    rows = [*report["groups"], {"key": "TOTAL", **report["totals"]}]
    models = [", ".join(r.get("production_models") or []) or production_model for r in rows]
    cells = [[c.cell(r) for c in COLUMNS] for r in rows]
    full = _full(rows, cells, models, by)
    if width is None or max(len(line) for line in full) <= width:
        return [f"since {report['since']}; would-cost priced at each call's recorded "
                "production model", *full]
    return _narrow(rows, cells, models, by, width, report["since"])


def _full(rows: list[Row], cells: list[list[str]], models: list[str], by: str | None
          ) -> list[str]:
    head = f"{by or '':<{KEY_WIDTH}}" + "".join(f"{c.header:>{c.width}}" for c in COLUMNS)
    out = [f"{head}  {MODEL_HEADER}"]
    for r, row_cells, model in zip(rows, cells, models, strict=True):
        line = f"{str(r['key'])[:KEY_WIDTH - 1]:<{KEY_WIDTH}}"
        line += "".join(f"{v:>{c.width}}" for v, c in zip(row_cells, COLUMNS, strict=True))
        out.append(f"{line}  {model}")
    return out


def _narrow(rows: list[Row], cells: list[list[str]], models: list[str], by: str | None,
            width: int, since: str) -> list[str]:
    sizes = [max(len(c.short), *(len(rc[i]) for rc in cells)) for i, c in enumerate(COLUMNS)]
    keys = [str(r["key"]) for r in rows]
    key_size = max(len(by or ""), *(len(k) for k in keys))
    kept = list(range(len(COLUMNS)))

    least_key = min(key_size, MIN_KEY)

    def total() -> int:
        return least_key + sum(sizes[i] + GAP for i in kept)

    for i in sorted(kept, key=lambda i: COLUMNS[i].keep):
        if total() <= width:
            break
        kept.remove(i)
    key_size = max(min(key_size, width - (total() - least_key)), least_key)

    def line(key: str, values: list[str]) -> str:
        text = key if len(key) <= key_size else key[:key_size - 1] + "…"
        return f"{text:<{key_size}}" + "".join(f"{values[i]:>{sizes[i] + GAP}}" for i in kept)

    distinct = sorted({m for r in rows for m in (r.get("production_models") or [])})
    out = textwrap.wrap(f"since {since}; would-cost priced at "
                        + (", ".join(distinct) if distinct else models[-1]), width)
    out.append(line(by or "", [c.short for c in COLUMNS]))
    out += [line(k, rc) for k, rc in zip(keys, cells, strict=True)]
    dropped = [COLUMNS[i].header for i in range(len(COLUMNS)) if i not in kept]
    if dropped:
        out += textwrap.wrap(f"(not shown at {width} columns: {', '.join(dropped)}; "
                             "see --json)", width)
    return out
