"""Issue 20, Why 4: one money format; a non-zero amount never reads as zero or in e-notation."""

from __future__ import annotations

import pytest

from devloop.money import format_usd, short_usd
from devloop.tui.widgets.stats import BudgetGauges  # noqa: F401  (the gauge uses short_usd)


@pytest.mark.parametrize("value", [0.000056, 0.0000561, 0.0005, 0.000561, 0.0047, 4e-07, 0.05])
def test_small_amounts_stay_readable(value: float) -> None:
    for shown in (format_usd(value), short_usd(value)):
        assert "e-" not in shown and shown.startswith("$")
        assert float(shown[1:]) != 0.0, shown
        assert abs(float(shown[1:]) - value) / value < 0.2, shown  # one significant digit
    assert len(short_usd(value)) <= 10


def test_a_small_budget_is_not_zero_per_day() -> None:
    assert f"{short_usd(0.0005)}/day" == "$0.0005/day"
    assert format_usd(0.0005) != "$0.00"
