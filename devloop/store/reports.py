"""Ledger reads behind the TUI: bounded queries only (LIMIT, the ts/tier indexes), thread-safe.

Screens call these from thread workers (never SQL of their own). One read connection is
shared under a lock: reads are short, and SQLite in WAL mode never makes them wait for the
gateway's writer.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from devloop.config import Budget
from devloop.money import sum_usd, total_usd
from devloop.periods import day_key, period_bounds
from devloop.store.budgets import SCOPE_SQL
from devloop.store.db import connect, open_db
from devloop.store.prompt_cache_week import PromptCacheWeek
from devloop.store.spend import LOCAL_TIERS, unknown_sql
from devloop.store.spend_detail import register_day

Row = sqlite3.Row  # what the call lists return (by index or by column name)
PAGE_SIZE = 100
COUNT_CAP = 10_000  # filtered counts stop here: "10,000+"
RECENT_LIMIT = 50
LATENCY_SAMPLE = 200
LIST_COLUMNS = ("id, ts, endpoint, feature, tier, model, cache, prompt_tokens, completion_tokens, "
                "latency_ms, status, cost_usd, saved_usd, request_id")
FILTER_FIELDS = {
    "tier": "tier", "model": "model", "feature": "feature", "cache": "cache",
    "endpoint": "endpoint", "status": "status", "user": "user", "backend": "backend",
    "key": "key_id",
}
TEXT_FIELDS = ("model", "feature", "route_reason", "request_id", "tier", "error")
_LOCAL = ", ".join(f"'{t}'" for t in LOCAL_TIERS)


SPEND_SQL = f"""
    SELECT devloop_day(ts) AS day, tier, coalesce(feature, '(none)') AS feature,
        count(*) AS calls,
        sum(cost_usd) AS cost, {unknown_sql("cost_usd")} AS cost_unknown,
        sum(saved_usd) AS saved, {unknown_sql("saved_usd")} AS saved_unknown,
        sum(counterfactual_usd) AS cf, {unknown_sql("counterfactual_usd")} AS cf_unknown
    FROM calls WHERE ts >= ? AND ts < ? GROUP BY day, tier, feature"""


@dataclass(slots=True)
class CallFilter:
    """Parsed filter text: ``tier:frontier feature:commit* slow`` (terms are ANDed)."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> CallFilter:
        out = cls()
        for term in text.split():
            name, sep, value = term.partition(":")
            if sep and name.lower() in FILTER_FIELDS and value:
                out.fields.append((FILTER_FIELDS[name.lower()], value))
            else:
                out.words.append(term)
        return out

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in self.fields:
            if column == "status" and value.isdigit():
                clauses.append("status = ?")
                params.append(int(value))
            elif "*" in value:
                clauses.append(f"{column} GLOB ?")
                params.append(value)
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        for word in self.words:
            like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in TEXT_FIELDS) + ")")
            params.extend([like] * len(TEXT_FIELDS))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def __bool__(self) -> bool:
        return bool(self.fields or self.words)


@dataclass(slots=True)
class Summary:
    calls_today: int = 0
    saved_today: float | None = 0.0
    spent_today: float | None = 0.0
    calls_week: int = 0
    saved_week: float | None = 0.0
    cache_hit_rate: float | None = None
    local_share: float | None = None
    # provider prompt caching this week: `devloop spend`'s provider_cache_hit_rate
    provider_cache_hit_rate: float | None = None


@dataclass(slots=True)
class BudgetUse:
    scope: str
    period: str
    limit_usd: float
    spent_usd: float

    @property
    def ratio(self) -> float:
        return self.spent_usd / self.limit_usd if self.limit_usd else 0.0


@dataclass(slots=True)
class TierLatency:
    tier: str
    calls: int
    p50_ms: float | None
    p95_ms: float | None
    last_ts: float | None


@dataclass(slots=True)
class SpendGroup:
    key: str
    calls: int
    cost_usd: float | None
    saved_usd: float | None
    counterfactual_usd: float | None


@dataclass(slots=True)
class SpendView:
    days: list[str]
    saved: list[float]
    spent: list[float]
    by_tier: list[SpendGroup]
    by_feature: list[SpendGroup]
    total_saved: float | None
    total_spent: float | None


class LedgerReader:
    """``tz``: the zone of "today", "this week" and the Spend screen's days (the ``timezone``
    setting, as budgets are enforced; None: the machine's local zone)."""

    def __init__(self, db_path: Path | str, tz: tzinfo | None = None) -> None:
        self.path = Path(db_path)
        self.tz = tz
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._spend_lock = threading.Lock()
        self._days: dict[str, list[dict[str, Any]]] = {}  # local day -> its grouped rows
        self._prompt_cache = PromptCacheWeek()

    # -- plumbing -------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Apply migrations once, before the first read and before the gateway opens the
        database: two first-time migrations racing would both create the same tables."""
        with self._schema_lock:
            if not self._schema_ready:
                open_db(self.path).conn.close()
                self._schema_ready = True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.ensure_schema()
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        conn.row_factory = sqlite3.Row
        register_day(conn, self.tz)  # devloop_day(ts): the calendar day in self.tz
        return conn

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        args = params if isinstance(params, dict) else tuple(params)
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def read_apart(self, fn: Any) -> Any:
        """``fn(connection)`` on a connection of its own (WAL readers run side by side), for
        longer reads written against a connection (the alert rules): the screens' short
        reads never wait for it, and the TUI never opens SQLite itself."""
        self.ensure_schema()
        conn = self._connect()
        try:
            return fn(conn)
        finally:
            conn.close()

    def tables(self) -> set[str]:
        return {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.query(f"PRAGMA table_info([{table}])")]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- calls ----------------------------------------------------------------------------
    def recent_calls(self, limit: int = RECENT_LIMIT) -> list[sqlite3.Row]:
        return self.query(f"SELECT {LIST_COLUMNS} FROM calls ORDER BY id DESC LIMIT ?", [limit])

    def calls_page(self, flt: CallFilter, page: int, size: int = PAGE_SIZE) -> list[sqlite3.Row]:
        where, params = flt.sql()
        return self.query(f"SELECT {LIST_COLUMNS} FROM calls{where} ORDER BY id DESC "
                          "LIMIT ? OFFSET ?", [*params, size, page * size])

    def count_calls(self, flt: CallFilter) -> int:
        """Exact without a filter; with one, at most COUNT_CAP + 1 (a text filter scans the
        ledger, and stopping at the cap halves that for common words)."""
        where, params = flt.sql()
        sql = (f"SELECT count(*) FROM (SELECT 1 FROM calls{where} LIMIT {COUNT_CAP + 1})"
               if where else "SELECT count(*) FROM calls")
        row = self.one(sql, params)
        return int(row[0]) if row else 0

    def call(self, call_id: int) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM calls WHERE id = ?", [call_id])
        return dict(row) if row else None

    # -- dashboard ------------------------------------------------------------------------
    def summary(self, now: float) -> Summary:
        day_start, day_end = period_bounds("day", now, self.tz)
        week_start, _ = period_bounds("week", now, self.tz)
        # One pass over this week's rows (the ts index bounds it) gives both periods.
        row = self.one(
            f"""SELECT count(*) AS calls_week,
                   sum(saved_usd) AS saved_week, {unknown_sql("saved_usd")} AS saved_week_unknown,
                   sum(ts >= :day) AS calls_today,
                   sum(CASE WHEN ts >= :day THEN saved_usd END) AS saved_today,
                   {unknown_sql("saved_usd", "ts >= :day AND ")} AS saved_today_unknown,
                   sum(CASE WHEN ts >= :day THEN cost_usd END) AS spent_today,
                   {unknown_sql("cost_usd", "ts >= :day AND ")} AS spent_today_unknown,
                   avg(cache = 'hit') AS hit_rate, avg(tier IN ({_LOCAL})) AS local_share
                FROM calls WHERE ts >= :week""",
            {"day": day_start, "week": min(week_start, day_start)},
        )
        if row is None or not row["calls_week"]:
            return Summary()
        return Summary(
            calls_today=int(row["calls_today"] or 0),
            saved_today=total_usd(row["saved_today"], row["saved_today_unknown"]),
            spent_today=total_usd(row["spent_today"], row["spent_today_unknown"]),
            calls_week=int(row["calls_week"]),
            saved_week=total_usd(row["saved_week"], row["saved_week_unknown"]),
            cache_hit_rate=row["hit_rate"],
            local_share=row["local_share"],
            provider_cache_hit_rate=self._prompt_cache.rate(
                self.query, min(week_start, day_start), day_start, day_end),
        )

    def budgets(self, budgets: list[Budget], now: float) -> list[BudgetUse]:
        """Spend against each profile budget in its current calendar period (in self.tz, as
        the gateway enforces it)."""
        out = []
        for b in budgets:
            start, end = period_bounds(b.period, now, self.tz)
            kind, _, name = b.scope.partition(":")
            args: list[Any] = [start, end] + ([name] if kind != "global" else [])
            row = self.one(f"SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE ts >= ? AND ts < ? "
                           f"AND {SCOPE_SQL[kind]}", args)
            out.append(BudgetUse(b.scope, b.period, b.usd, float(row[0]) if row else 0.0))
        return out

    def tier_latency(self, tiers: list[str]) -> dict[str, TierLatency]:
        """p50/p95 over each tier's latest calls (the tier index serves ORDER BY id DESC)."""
        out: dict[str, TierLatency] = {}
        for tier in tiers:
            rows = self.query("SELECT latency_ms, ts FROM calls WHERE tier = ? AND status = 200 "
                              "ORDER BY id DESC LIMIT ?", [tier, LATENCY_SAMPLE])
            values = sorted(r[0] for r in rows if r[0] is not None)
            if not values:
                out[tier] = TierLatency(tier, 0, None, None, None)
                continue
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            out[tier] = TierLatency(tier, len(values), statistics.median(values), p95, rows[0][1])
        return out

    # -- spend ----------------------------------------------------------------------------
    def spend(self, now: float, days: int) -> SpendView:
        """Saved and spent per calendar day (in self.tz), by tier and by feature. Past days
        never change (rows are stamped when written), so their aggregates are cached; only
        today is re-read."""
        today, tomorrow = period_bounds("day", now, self.tz)
        past = self._past_days(today, days, self.query)
        with self._spend_lock:
            rows = [r for key in past for r in self._days[key]]
        rows += self._spend_rows(today, tomorrow)
        day_keys = [*past, day_key(today, self.tz)]
        saved = dict.fromkeys(day_keys, 0.0)
        spent = dict.fromkeys(day_keys, 0.0)
        tiers: dict[str, list[Any]] = {}
        features: dict[str, list[Any]] = {}
        for r in rows:
            if r["day"] in saved:
                saved[r["day"]] += r["saved"] or 0.0
                spent[r["day"]] += r["cost"] or 0.0
            for key, groups in ((r["tier"] or "(none)", tiers), (r["feature"], features)):
                g = groups.setdefault(key, [0, 0.0, 0, 0.0, 0, 0.0, 0])
                g[0] += r["calls"]
                g[1] += r["cost"] or 0.0
                g[2] += r["cost_unknown"]
                g[3] += r["saved"] or 0.0
                g[4] += r["saved_unknown"]
                g[5] += r["cf"] or 0.0
                g[6] += r["cf_unknown"]

        def shape(groups: dict[str, list[Any]]) -> list[SpendGroup]:
            items = [SpendGroup(k, g[0], total_usd(g[1], g[2]), total_usd(g[3], g[4]),
                                total_usd(g[5], g[6])) for k, g in groups.items()]
            return sorted(items, key=lambda s: (-(s.saved_usd or 0.0), -s.calls, s.key))

        by_tier = shape(tiers)
        return SpendView(
            days=[d[5:] for d in day_keys], saved=[saved[d] for d in day_keys],
            spent=[spent[d] for d in day_keys], by_tier=by_tier, by_feature=shape(features),
            total_saved=sum_usd([g.saved_usd for g in by_tier]),
            total_spent=sum_usd([g.cost_usd for g in by_tier]),
        )


    def _spend_rows(self, start: float, end: float) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(SPEND_SQL, [start, end])]

    def _past_days(self, today: float, days: int, query: Any) -> list[str]:
        """The keys of the ``days - 1`` days before today, fetching those not cached yet."""
        starts = self._day_starts(today, days - 1)
        past = [day_key(start, self.tz) for start in starts]
        with self._spend_lock:
            missing = [i for i, key in enumerate(past) if key not in self._days]
        if missing:
            end = starts[missing[-1] + 1] if missing[-1] + 1 < len(starts) else today
            fetched = query(SPEND_SQL, [starts[missing[0]], end])
            grouped: dict[str, list[dict[str, Any]]] = {past[i]: [] for i in missing}
            for row in fetched:
                if row["day"] in grouped:
                    grouped[row["day"]].append(dict(row))
            with self._spend_lock:
                for key, day_rows in grouped.items():
                    self._days.setdefault(key, day_rows)
        return past

    def warm_days(self, now: float, days: int) -> None:
        """Fill the daily cache ahead of need, on a connection of its own (WAL readers run
        side by side), so switching the Spend window never waits for a long scan."""
        today, _ = period_bounds("day", now, self.tz)
        self.read_apart(lambda conn: self._past_days(
            today, days, lambda sql, args: conn.execute(sql, args).fetchall()))

    def _day_starts(self, today: float, count: int) -> list[float]:
        """The starts of the ``count`` days before ``today`` (a start), oldest first: local
        days are 23 or 25 hours long when the clocks change."""
        starts = [today]
        for _ in range(count):
            starts.append(period_bounds("day", starts[-1] - 1, self.tz)[0])
        return starts[:0:-1]

    def forget_days(self) -> None:
        """Drop the cached daily aggregates (an explicit refresh re-reads everything)."""
        with self._spend_lock:
            self._days.clear()
        self._prompt_cache.forget()
