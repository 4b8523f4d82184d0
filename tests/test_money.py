"""One money rule: an unknown price is None (shown "unknown"), a sum with an unknown is unknown,
and `devloop spend --json` and the TUI give the same figures for the same rows."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from devloop.money import format_usd, round_usd, short_usd, sum_usd, total_usd
from devloop.store.calls import CallRecord
from devloop.store.db import open_db
from devloop.store.reports import LedgerReader
from devloop.store.spend import spend_report


@pytest.mark.parametrize(("value", "shown"), [
    (None, "unknown"),
    (0.0, "$0.0000"),
    (0.5, "$0.5000"),
    (0.0047, "$0.0047"),
    (0.000123, "$0.00012"),  # four decimals would read $0.0001
    (0.0000123, "$0.000012"),  # ... and $0.0000 here: never zero when it is not
    (1.5, "$1.50"),
    (1234.5, "$1,234.50"),
])
def test_format_usd(value: float | None, shown: str) -> None:
    assert format_usd(value) == shown


def test_short_usd_and_unknown_label() -> None:
    assert short_usd(None) == "?" and short_usd(0) == "$0" and short_usd(2500) == "$2.5k"
    assert format_usd(None, unknown="n/a") == "n/a"


def test_sums_with_an_unknown_are_unknown() -> None:
    assert sum_usd([0.1, 0.2]) == pytest.approx(0.3)
    assert sum_usd([0.1, None, 0.2]) is None
    assert sum_usd([]) == 0.0
    assert total_usd(1.25, 0) == 1.25 and total_usd(1.25, 1) is None and total_usd(None, 0) == 0.0
    assert round_usd(math.nan) is None and round_usd(None) is None and round_usd(0.1 + 0.2) == 0.3


def _record(i: int, ts: float, cost: float | None, saved: float | None,
            status: int = 200) -> CallRecord:
    return CallRecord(request_id=f"r{i}", endpoint="chat", tier="frontier", backend="litellm",
                      model="m", route_reason="r", status=status, cost_usd=cost,
                      counterfactual_usd=None if saved is None or cost is None else cost + saved,
                      saved_usd=saved, ts=ts)


@pytest.mark.parametrize(("rows", "known"), [
    # a failed call with no price used no tokens: a known $0, in both views
    ([(0.01, 0.02, 200), (None, None, 502)], True),
    # an answered call with no price makes both totals unknown
    ([(0.01, 0.02, 200), (None, None, 200)], False),
])
def test_spend_and_the_tui_agree_on_unknown(tmp_path: Path,
                                            rows: list[tuple[float | None, float | None, int]],
                                            known: bool) -> None:
    path = tmp_path / "d.db"
    db = open_db(path)
    now = time.time()
    for i, (cost, saved, status) in enumerate(rows):
        db["calls"].insert(_record(i, now - 0.001 * (i + 1), cost, saved, status).row())
    db.conn.commit()
    report = spend_report(db, "all")
    db.conn.close()
    summary = LedgerReader(path).summary(now)

    totals = report["totals"]
    assert (totals["cost_usd"] is not None) is known
    assert (summary.spent_today is not None) is known
    if known:
        assert totals["cost_usd"] == pytest.approx(summary.spent_today)
        assert totals["saved_usd"] == pytest.approx(summary.saved_today)
