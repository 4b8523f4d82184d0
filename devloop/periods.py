"""Calendar periods (day, week, month) in the user's time zone.

The ``timezone`` setting (``DEVLOOP_TIMEZONE``, an IANA name such as
``America/Los_Angeles``, or ``UTC``) defaults to the machine's local zone. Budget periods,
``devloop spend --by day`` and a budget 429's ``Retry-After`` all use it, so an evening call
in Los Angeles lands on its own day and a daily budget resets at local midnight.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCAL = "local"


def zone(name: str | None) -> tzinfo | None:
    """The zone for ``name``; None means the machine's local zone (DST-aware per instant).

    Raises ValueError naming the setting for an unknown zone."""
    if name is None or name == "" or name == LOCAL:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone: unknown time zone {name!r} (use an IANA name such as "
                         f"Europe/Berlin, or UTC, or local)") from exc


def _at(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)


def _epoch(dt: datetime) -> float:
    """Epoch seconds of a wall-clock time (naive = machine local, resolved with its DST)."""
    if dt.tzinfo is None:
        return time.mktime(dt.timetuple())
    return dt.timestamp()


def period_bounds(period: str, now: float | None = None, tz: tzinfo | None = None
                  ) -> tuple[float, float]:
    """[start, end) of the calendar ``period`` (day, week from Monday, month) holding
    ``now``, in zone ``tz``, as epoch seconds."""
    t = _at(time.time() if now is None else now, tz)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start = day
        end = day + timedelta(days=1)  # wall-clock arithmetic: DST days are 23 or 25 h
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"period: must be day, week or month, not {period!r}")
    # ZoneInfo computes each wall-clock time's own UTC offset, either side of a DST change
    return _epoch(start), _epoch(end)


def seconds_to_period_end(period: str, now: float | None = None, tz: tzinfo | None = None
                          ) -> int:
    """``Retry-After`` for a budget of ``period``: whole seconds until it resets (>= 1)."""
    now = time.time() if now is None else now
    return max(1, int(period_bounds(period, now, tz)[1] - now + 0.999))


def day_key(ts: float, tz: tzinfo | None = None) -> str:
    """The calendar date of ``ts`` in ``tz`` (YYYY-MM-DD): ``spend --by day`` groups on it."""
    return _at(ts, tz).strftime("%Y-%m-%d")


def zone_label(ts: float, tz: tzinfo | None = None) -> str:
    """The zone's abbreviation at ``ts`` ("UTC", "PST", "CET"), to say which day "today" is."""
    return _at(ts, tz).astimezone(tz).tzname() or "local"
