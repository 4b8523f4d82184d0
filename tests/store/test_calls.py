"""store/calls.py, the one writer of the calls table: every CallRecord field is a column,
the contract's ledger columns exist (also on an upgraded database), and the INSERT job
writes a row together with the jobs that belong to the same call."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

from devloop.store.calls import CALL_COLUMNS, CallRecord, insert_call_job, saved
from devloop.store.db import open_db
from devloop.store.writer import DbWriter
from tests.store.test_migrations import columns, old_database

# DESIGN.md, "Ledger and savings": the names are the contract.
CONTRACT_COLUMNS = ("cache_read_tokens", "cache_write_tokens", "cache_write_ttl",
                    "reasoning_tokens", "input_cost_usd", "output_cost_usd", "session",
                    "batch_id", "parent_request_id", "semantic_similarity", "audit_sampled")


def test_every_field_is_a_column_and_the_contract_columns_exist(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    open_db(path).close()
    calls = columns(path, "calls")
    assert set(CALL_COLUMNS) <= calls
    assert set(CONTRACT_COLUMNS) <= calls
    defaults = {f.name: f.default for f in fields(CallRecord)}
    assert all(defaults[c] is None for c in CONTRACT_COLUMNS if c != "audit_sampled")
    assert defaults["audit_sampled"] == 0


def test_an_old_database_gains_the_contract_columns(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    old_database(path)
    open_db(path).close()
    assert set(CONTRACT_COLUMNS) <= columns(path, "calls")
    with sqlite3.connect(path) as conn:  # rows from before are "not sampled", not unknown
        assert conn.execute("SELECT audit_sampled FROM calls").fetchall() == [(0,)]


async def test_insert_job_writes_the_row_and_its_companions_in_one_transaction(
        tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    writer = DbWriter(path)
    rec = CallRecord(request_id="r1", endpoint="chat", tier="frontier", backend="litellm",
                     model="m", route_reason="test", prompt_tokens=100, completion_tokens=7,
                     cost_usd=0.01, counterfactual_usd=0.03, saved_usd=saved(0.01, 0.03),
                     cache_read_tokens=80, cache_write_tokens=20, cache_write_ttl="1h",
                     reasoning_tokens=5, input_cost_usd=0.008, output_cost_usd=0.002,
                     session="s-1", batch_id="batch_1", parent_request_id="r0",
                     semantic_similarity=0.97, audit_sampled=1)

    def companion(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO reservations (id, ts, scopes, usd, settled) "
                     "VALUES ('hold', 1.0, 'global', 0.5, 0)")

    def failing(conn: sqlite3.Connection) -> None:
        raise RuntimeError("the cache write failed")

    try:
        await writer.run(insert_call_job(rec, None, companion))
        try:
            await writer.run(insert_call_job(CallRecord("r2", "chat", "local", "x", "m", "t"),
                                             failing))
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failing companion job did not fail the write")
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM calls").fetchall()
        held = conn.execute("SELECT count(*) FROM reservations").fetchone()[0]
    assert [r["request_id"] for r in rows] == ["r1"]  # r2 rolled back with its companion
    assert held == 1
    row = dict(rows[0])
    assert row["ts"] > 0  # stamped at insert when the record had none
    for name in CONTRACT_COLUMNS:
        assert row[name] == getattr(rec, name), name
    assert row["saved_usd"] == saved(0.01, 0.03)


def test_saved_is_unknown_when_either_price_is() -> None:
    assert saved(None, 0.1) is None and saved(0.1, None) is None
    assert saved(0.25, 1.0) == 0.75
