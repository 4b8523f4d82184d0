"""A database made by an older devloop is upgraded in place when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from devloop.store.db import connect, open_db
from devloop.store.migrations import MIGRATIONS
from devloop.store.writer import DbWriter


def old_database(path: Path) -> None:
    """What the first release wrote: migration 1 only, and one call in the ledger."""
    db = sqlite_utils.Database(connect(path))
    db.execute("CREATE TABLE _migrations (n INTEGER PRIMARY KEY, name TEXT, ts REAL)")
    MIGRATIONS[0](db)
    db.execute("INSERT INTO _migrations VALUES (1, 'm001_calls', 0)")
    db["calls"].insert({"ts": 1.0, "request_id": "old-1", "tier": "local", "cost_usd": 0.0,
                        "counterfactual_usd": 0.01, "saved_usd": 0.01})
    db.close()


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def test_old_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    old_database(path)
    assert "cached_tokens" not in columns(path, "calls")
    db = open_db(path)
    db.close()
    calls = columns(path, "calls")
    for added in ("cached_tokens", "ttft_ms", "stream", "error", "key_id", "prompt_hash",
                  "prefix_hash", "tokens_counted", "production_model"):
        assert added in calls, added
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        applied = [r[0] for r in conn.execute("SELECT n FROM _migrations ORDER BY n")]
        kept = conn.execute("SELECT request_id, saved_usd FROM calls").fetchall()
    assert {"cache", "reservations", "keys"} <= tables
    assert applied == list(range(1, len(MIGRATIONS) + 1))
    assert kept == [("old-1", 0.01)]  # the old rows survive


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    open_db(path).close()
    from devloop.store.db import migrate

    db = open_db(path)
    assert migrate(db) == 0
    db.close()


def test_the_writer_opens_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    old_database(path)
    writer = DbWriter(path)
    try:
        writer.insert("calls", {"request_id": "new-1", "cached_tokens": 3, "ts": 2.0}).result(10)
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_cache_entries_survive_the_lean_write_path_migration(tmp_path: Path) -> None:
    """m022 rebuilds the cache keyed by its hash alone and drops the indexes no query reads;
    the entries stored before it are kept and still found by key."""
    path = tmp_path / "devloop.db"
    lean = next(i for i, fn in enumerate(MIGRATIONS) if fn.__name__ == "m022_lean_write_path")
    db = sqlite_utils.Database(connect(path))
    db.execute("CREATE TABLE _migrations (n INTEGER PRIMARY KEY, name TEXT, ts REAL)")
    for n, fn in enumerate(MIGRATIONS[:lean], start=1):
        fn(db)
        db.execute("INSERT INTO _migrations VALUES (?, ?, 0)", (n, fn.__name__))
    db.execute("INSERT INTO cache (key, namespace, model, body, prompt_tokens, "
               "completion_tokens, created, expires) VALUES ('k1', 'ns', 'm', '{}', 3, 4, 1, 2)")
    db.close()
    open_db(path).close()
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        cache_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'cache'").fetchone()
        row = conn.execute("SELECT model, body, prompt_tokens, completion_tokens, expires "
                           "FROM cache WHERE key = 'k1'").fetchone()
    assert row == ("m", "{}", 3, 4, 2.0)
    assert "WITHOUT ROWID" in cache_sql[0]
    assert not {"idx_cache_expires", "idx_calls_feature"} & indexes
    assert {"idx_calls_ts", "idx_calls_tier"} <= indexes  # what queries still read by
