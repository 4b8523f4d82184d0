"""Short, fixed-width renderings of ledger values for tables and cards (no Textual here)."""

from __future__ import annotations

import time

from devloop.money import format_usd, short_usd

__all__ = ["short_usd"]  # re-exported for the screens


def usd(value: float | None, unknown: str = "unknown") -> str:
    """Dollars for cards and details (money.format_usd; a zero is shown as "$0")."""
    return "$0" if value == 0 else format_usd(value, unknown)


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
