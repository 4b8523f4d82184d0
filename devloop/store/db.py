"""Opening the SQLite database: pragmas for a concurrent, durable ledger, then migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from devloop.store.migrations import MIGRATIONS

Database = sqlite_utils.Database  # what callers outside store/ name in type hints


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    # WAL + synchronous=NORMAL: a commit survives the process being killed (not power loss),
    # and readers never block the writer.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the migrations not yet applied; return how many ran."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (n INTEGER PRIMARY KEY, name TEXT, ts REAL)")
    done = {row[0] for row in db.execute("SELECT n FROM _migrations").fetchall()}
    ran = 0
    for n, fn in enumerate(MIGRATIONS, start=1):
        if n in done:
            continue
        with db.conn:
            db.conn.execute("BEGIN IMMEDIATE")
            # Another process may have applied it while we waited for the write lock.
            if db.conn.execute("SELECT 1 FROM _migrations WHERE n = ?", (n,)).fetchone():
                continue
            fn(db)
            db.conn.execute(
                "INSERT INTO _migrations (n, name, ts) VALUES (?, ?, strftime('%s','now'))",
                (n, fn.__name__),
            )
        ran += 1
    return ran


def open_db(path: Path | str) -> sqlite_utils.Database:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(connect(path))
    migrate(db)
    return db


class StoreError(Exception):
    """The database cannot be opened or read (the message names the file)."""


def open_db_checked(path: Path | str) -> sqlite_utils.Database:
    """``open_db``, with any SQLite or file-system failure as a StoreError naming the file."""
    try:
        return open_db(path)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from exc
