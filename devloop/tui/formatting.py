"""Short, fixed-width renderings of ledger values for tables and cards (no Textual here)."""

from __future__ import annotations

import time


def usd(value: float | None, unknown: str = "unknown") -> str:
    """Dollars: four decimals below $1 (local calls cost fractions of a cent), else two."""
    if value is None:
        return unknown
    if value == 0:
        return "$0"
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def short_usd(value: float | None) -> str:
    """Dollars in at most seven characters, for narrow columns."""
    if value is None:
        return "?"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.4f}"
    if abs(value) < 1000:
        return f"${value:.2f}"
    return f"${value / 1000:.1f}k"


def tokens(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def millis(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f}ms" if ms < 10_000 else f"{ms / 1000:.1f}s"


def clock(ts: float | None) -> str:
    """Local wall-clock time of a call (HH:MM:SS)."""
    return "-" if not ts else time.strftime("%H:%M:%S", time.localtime(ts))


def stamp(ts: float | None) -> str:
    """Local date and time (for detail panes and run lists)."""
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def short_stamp(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%m-%d %H:%M", time.localtime(ts))


def clip(text: str | None, width: int) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def calls(n: int) -> str:
    return f"{n:,} call" if n == 1 else f"{n:,} calls"
