"""Calendar periods in the configured time zone (issue 12: time)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from devloop.config import Settings
from devloop.periods import day_key, period_bounds, seconds_to_period_end, zone

LA = ZoneInfo("America/Los_Angeles")


def test_evening_in_los_angeles_stays_on_its_day() -> None:
    evening = datetime(2026, 11, 28, 20, 30, tzinfo=LA).timestamp()  # 04:30 UTC next day
    assert day_key(evening, LA) == "2026-11-28"
    assert day_key(evening, zone("UTC")) == "2026-11-29"


def test_day_period_resets_at_local_midnight_and_retry_after_counts_to_it() -> None:
    t = datetime(2026, 11, 28, 20, 30, tzinfo=LA).timestamp()
    start, end = period_bounds("day", t, LA)
    assert start == datetime(2026, 11, 28, tzinfo=LA).timestamp()
    assert end == datetime(2026, 11, 29, tzinfo=LA).timestamp()
    assert seconds_to_period_end("day", t, LA) == 3 * 3600 + 30 * 60


def test_dst_day_is_23_hours_and_week_month_bounds() -> None:
    t = datetime(2026, 3, 8, 12, tzinfo=LA).timestamp()
    start, end = period_bounds("day", t, LA)
    assert end - start == 23 * 3600
    wk = period_bounds("week", t, LA)
    assert wk[0] == datetime(2026, 3, 2, tzinfo=LA).timestamp()
    mo = period_bounds("month", t, LA)
    assert mo == (datetime(2026, 3, 1, tzinfo=LA).timestamp(),
                  datetime(2026, 4, 1, tzinfo=LA).timestamp())


def test_local_zone_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVLOOP_TIMEZONE", raising=False)
    s = Settings()
    assert s.timezone == "local" and s.zone() is None
    t = datetime(2026, 6, 1, 23, 0).timestamp()  # naive: machine local
    assert day_key(t) == "2026-06-01"


def test_unknown_zone_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVLOOP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="timezone"):
        Settings()
    monkeypatch.setenv("DEVLOOP_TIMEZONE", "Europe/Berlin")
    assert Settings().zone() == ZoneInfo("Europe/Berlin")
