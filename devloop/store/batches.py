"""The OpenAI Files and Batch API tables: ``batch_files`` and ``batches`` (migration m008);
``provider_batches`` (batches devloop submitted to a provider, migration m111).

Reads use the gateway's read connection; writes go through the one DB writer.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from devloop.store.calls import CALL_COLUMNS, INSERT_CALL
from devloop.store.db import open_db
from devloop.store.writer import DbWriter

PENDING = ("validating", "in_progress", "finalizing", "cancelling")
_PENDING_SQL = ", ".join(f"'{s}'" for s in PENDING)


class BatchStore:
    def __init__(self, read_conn: sqlite3.Connection, writer: DbWriter) -> None:
        self.read_conn, self.writer = read_conn, writer

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.read_conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        await self.writer.run(lambda conn: conn.execute(sql, args))

    # -- files -------------------------------------------------------------------------------
    async def add_file(self, row: dict[str, Any]) -> None:
        await self._exec("INSERT INTO batch_files (id, created_at, filename, purpose, bytes, "
                         "path, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (row["id"], row["created_at"], row["filename"], row["purpose"],
                          row["bytes"], row["path"], row["owner"]))

    def file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM batch_files WHERE id = ?", (file_id,))
        return rows[0] if rows else None

    def files(self) -> list[dict[str, Any]]:
        """Newest first."""
        return self._rows("SELECT * FROM batch_files ORDER BY created_at DESC, rowid DESC")

    async def delete_file(self, file_id: str) -> None:
        await self._exec("DELETE FROM batch_files WHERE id = ?", (file_id,))

    # -- batches -----------------------------------------------------------------------------
    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """``body`` (the batch object's JSON), ``owner`` and ``context``."""
        rows = self._rows("SELECT body, owner, context FROM batches WHERE id = ?", (batch_id,))
        return rows[0] if rows else None

    def batches(self) -> list[dict[str, Any]]:
        """``id``, ``body`` and ``owner`` of every batch, newest first."""
        return self._rows("SELECT id, body, owner FROM batches ORDER BY created_at DESC, rowid DESC")

    async def insert_batch(self, batch_id: str, created_at: int, status: str, body: str,
                           context: str, owner: str | None) -> None:
        await self._exec("INSERT INTO batches (id, created_at, status, body, context, owner) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (batch_id, created_at, status, body, context, owner))

    async def update_batch(self, batch_id: str, status: str, body: str) -> None:
        await self._exec("UPDATE batches SET status = ?, body = ? WHERE id = ?",
                         (status, body, batch_id))

    def pending_ids(self) -> list[str]:
        """Batches a previous process left unfinished."""
        return [r["id"] for r in self._rows(f"SELECT id FROM batches WHERE status IN "
                                            f"({_PENDING_SQL})")]


def has_pending_batches(read_conn: sqlite3.Connection) -> bool:
    try:
        return read_conn.execute(f"SELECT 1 FROM batches WHERE status IN ({_PENDING_SQL}) "
                                 "LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # no Batch API tables: nothing to resume
        return False


# -- provider batches (a provider's Batch API; migration m111) ------------------------------
PROVIDER_PENDING = ("submitted", "in_progress", "cancelling")


class ProviderBatchStore:
    """Batches devloop submitted to a provider: their ids and state survive a restart."""

    def __init__(self, db_path: Path) -> None:
        self.db = open_db(db_path)

    def close(self) -> None:
        self.db.conn.close()

    def add(self, row: dict[str, Any]) -> None:
        now = time.time()
        with self.db.conn:
            self.db["provider_batches"].insert(
                {"created_at": now, "updated_at": now, "detail": "", "context": "{}", **row})

    def update(self, batch_id: str, status: str, detail: str = "") -> None:
        with self.db.conn:
            self.db.conn.execute("UPDATE provider_batches SET status = ?, detail = ?, "
                                 "updated_at = ? WHERE id = ?",
                                 (status, detail, time.time(), batch_id))

    def get(self, batch_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM provider_batches WHERE id = ?", [batch_id]))
        return rows[0] if rows else None

    def pending_for(self, plan_key: str) -> dict[str, Any] | None:
        """The unfinished batch a previous run submitted for the same cases, if any."""
        marks = ", ".join("?" * len(PROVIDER_PENDING))
        rows = list(self.db.query(
            f"SELECT * FROM provider_batches WHERE plan_key = ? AND status IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1", [plan_key, *PROVIDER_PENDING]))
        return rows[0] if rows else None

    def all(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return list(self.db.query("SELECT * FROM provider_batches ORDER BY created_at DESC, "
                                  "rowid DESC LIMIT ?", [limit]))


def book_batch_calls(db_path: Path, records: list[Any]) -> None:
    """Ledger rows (``CallRecord``s) for the requests of a finished provider batch."""
    if not records:
        return
    db = open_db(db_path)
    try:
        with db.conn:
            db.conn.executemany(INSERT_CALL, [
                [(r.ts or time.time()) if c == "ts" else getattr(r, c) for c in CALL_COLUMNS]
                for r in records])
    finally:
        db.conn.close()
