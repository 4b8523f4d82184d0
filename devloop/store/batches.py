"""The OpenAI Files and Batch API tables: ``batch_files`` and ``batches`` (migration m008).

Reads use the gateway's read connection; writes go through the one DB writer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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
