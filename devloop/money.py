"""Dollars: one rule for unknown prices, one way to sum them, one way to show them.

An unknown price is None (NULL in the ledger), never $0; a sum with any unknown in it is
unknown, never a partial figure; and it is shown as "unknown". A known amount is shown
with enough digits to be non-zero when it is (a local call can cost a millionth of a cent).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

UNKNOWN = "unknown"
DIGITS = 10  # stored and reported amounts are rounded here: float noise, not cents


def round_usd(value: Any) -> float | None:
    """A known amount as a float (NaN and None are unknown)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, DIGITS)


def total_usd(total: Any, unknown: Any) -> float | None:
    """A SQL ``sum`` and the count of its unknown rows -> the total, None when any was unknown."""
    return None if unknown else round_usd(total or 0.0)


def sum_usd(values: Iterable[float | None]) -> float | None:
    """The sum, None when any value is unknown."""
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return round_usd(total)


def format_usd(value: float | None, unknown: str = UNKNOWN) -> str:
    """``$1,234.56`` from a dollar up; below, four decimals and at least two significant
    digits (``$0.0047``, ``$0.000012``), so a non-zero amount never reads as zero."""
    if value is None:
        return unknown
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if value == 0:
        return "$0.0000"
    decimals = max(4, 1 - math.floor(math.log10(abs(value))))
    return f"${value:.{decimals}f}"


def short_usd(value: float | None, unknown: str = "?") -> str:
    """At most about seven characters, for narrow table columns."""
    if value is None:
        return unknown
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.4f}"
    if abs(value) < 1000:
        return f"${value:.2f}"
    return f"${value / 1000:.1f}k"
