"""The TUI's reads: filters, the dashboard figures, budgets, and a ladder that tolerates
missing tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from devloop.config import Budget
from devloop.store.budgets import period_bounds
from devloop.store.calls import CallRecord
from devloop.store.db import open_db
from devloop.store.reports import CallFilter, LedgerReader
from devloop.tui.ladder import NOT_RUN, list_runs, load_ladder, run_cases
from tests.tui.seed import FIXED_NOW, seed_ladder

DAY_START, _ = period_bounds("day", FIXED_NOW)


def insert(db_path: Path, *records: CallRecord) -> None:
    db = open_db(db_path)
    for rec in records:
        db["calls"].insert(rec.row())
    db.conn.close()


def call(ts: float, tier: str = "local", saved: float | None = 0.01, cost: float | None = 0.0,
         status: int = 200, cache: str = "miss", feature: str | None = None) -> CallRecord:
    return CallRecord(request_id=f"r{ts}", endpoint="chat", tier=tier, backend="x", model="m",
                      route_reason="because", cache=cache, feature=feature, status=status,
                      cost_usd=cost, counterfactual_usd=None if saved is None else saved + (cost or 0),
                      saved_usd=saved, ts=ts)


@pytest.mark.parametrize(("text", "where", "params"), [
    ("", "", []),
    ("tier:frontier", " WHERE tier = ?", ["frontier"]),
    ("status:502 feature:commit*", " WHERE status = ? AND feature GLOB ?", [502, "commit*"]),
    ("Tier:local", " WHERE tier = ?", ["local"]),
    ("nope:x", None, None),  # an unknown field is plain text
])
def test_filter_parsing(text: str, where: str | None, params: list[object] | None) -> None:
    sql, args = CallFilter.parse(text).sql()
    if where is None:
        assert "LIKE" in sql and args[0] == "%nope:x%"
    else:
        assert (sql, args) == (where, params)


def test_filter_text_matches_literally(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, call(1, feature="100%_done"), call(2, feature="100x-done"))
    reader = LedgerReader(db)
    assert reader.count_calls(CallFilter.parse("100%_")) == 1  # % and _ are not wildcards
    assert reader.count_calls(CallFilter.parse("done")) == 2


def test_summary_today_and_week(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db,
           call(DAY_START + 10, saved=0.5, cache="hit"),
           call(DAY_START + 20, tier="frontier", saved=0.0, cost=0.25),
           call(DAY_START - 86400, saved=1.0),  # yesterday: in this week (a Wednesday)
           call(DAY_START - 30 * 86400, saved=9.0),  # last month: in neither
           call(DAY_START + 30, tier="shared", saved=None, cost=0.0, status=502))
    s = LedgerReader(db).summary(FIXED_NOW)
    assert (s.calls_today, s.calls_week) == (3, 4)
    assert s.saved_today == pytest.approx(0.5)  # a failed call's NULL is not "unknown"
    assert s.spent_today == pytest.approx(0.25)
    assert s.saved_week == pytest.approx(1.5)
    assert s.cache_hit_rate == pytest.approx(0.25)
    assert s.local_share == pytest.approx(0.75)


def test_unknown_price_makes_the_sum_unknown(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, call(DAY_START + 1, saved=0.5), call(DAY_START + 2, saved=None, cost=None))
    s = LedgerReader(db).summary(FIXED_NOW)
    assert s.saved_today is None and s.spent_today is None


def test_budget_use_per_scope_and_period(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, call(DAY_START + 1, tier="frontier", cost=0.4, saved=0.0),
           call(DAY_START - 86400, tier="frontier", cost=1.0, saved=0.0),
           call(DAY_START + 2, tier="shared", cost=0.1, saved=0.0))
    uses = LedgerReader(db).budgets(
        [Budget(scope="tier:frontier", usd=2.0, period="day"),
         Budget(scope="global", usd=10.0, period="week")], FIXED_NOW)
    assert [(u.spent_usd, u.ratio) for u in uses] == [
        (pytest.approx(0.4), pytest.approx(0.2)), (pytest.approx(1.5), pytest.approx(0.15))]


def test_ladder_without_stage_tables_is_not_run(tmp_path: Path) -> None:
    """An older database (or one `devloop check`/`eval` never touched): every stage not run."""
    db = tmp_path / "d.db"
    open_db(db).conn.close()
    conn = sqlite3.connect(db)
    for table in ("prompt_checks", "eval_runs", "eval_results", "promotions"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.commit()
    conn.close()
    reader = LedgerReader(db)
    info = load_ladder(reader, Path(__file__).parent / "data" / "commit-message.yaml")
    assert info.error is None and info.cases == 3
    assert {s.status for s in info.stages.values()} == {NOT_RUN}
    assert list_runs(reader) is None
    assert run_cases(reader, "anything") == []


def test_ladder_reads_stored_stages(tmp_path: Path, workdir: Path) -> None:
    db = tmp_path / "d.db"
    evalset = workdir / "evalsets" / "commit-message.yaml"
    seed_ladder(db, evalset)
    reader = LedgerReader(db)
    info = load_ladder(reader, evalset)
    assert {k: s.status for k, s in info.stages.items()} == {
        "draft": "pass", "compression": "warn", "cache_order": "pass", "eval": "pass",
        "promoted": "pass"}
    assert info.stages["draft"].summary == "80% pass"
    runs = list_runs(reader)
    assert runs is not None and [r["id"] for r in runs] == ["run-new", "run-old"]
    cases = run_cases(reader, "run-old")
    assert [c["pass"] for c in cases] == [1, 1, 0]
    assert cases[2]["reason"]


def test_filtered_counts_stop_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import devloop.store.reports as data

    monkeypatch.setattr(data, "COUNT_CAP", 3)
    db = tmp_path / "d.db"
    insert(db, *(call(i, feature="commit-msg") for i in range(1, 6)))
    reader = LedgerReader(db)
    assert reader.count_calls(CallFilter.parse("commit")) == 4  # "3+"
    assert reader.count_calls(CallFilter()) == 5  # unfiltered: exact


def test_spend_caches_past_days_but_rereads_today(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    insert(db, call(DAY_START - 86400 + 5, saved=1.0), call(DAY_START + 5, saved=0.5))
    reader = LedgerReader(db)
    reader.warm_days(FIXED_NOW, 30)
    first = reader.spend(FIXED_NOW, 7)
    assert first.total_saved == pytest.approx(1.5)
    assert first.saved[-2:] == [pytest.approx(1.0), pytest.approx(0.5)]
    # A late row for yesterday is not seen (past days are final once read); today's is.
    insert(db, call(DAY_START - 86400 + 6, saved=9.0), call(DAY_START + 6, saved=0.25))
    again = reader.spend(FIXED_NOW, 7)
    assert again.saved[-2:] == [pytest.approx(1.0), pytest.approx(0.75)]
    reader.forget_days()  # what `r` on the Spend screen does
    assert reader.spend(FIXED_NOW, 7).saved[-2] == pytest.approx(10.0)
