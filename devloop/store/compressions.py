"""The compression cache: an LLMLingua result per (text hash, rate, compressor), so that
`devloop check` and `watch` never recompress unchanged text."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from devloop.store.compressions_schema import TABLE


def cache_key(text: str, rate: float, compressor: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return hashlib.sha256(f"{digest}|{rate:.4f}|{compressor}".encode()).hexdigest()


class CompressionCache:
    """Reads and writes one SQLite file (WAL, busy timeout: safe next to the ledger writer)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _conn(self) -> sqlite3.Connection:
        from devloop.store.db import open_db

        return open_db(self.db_path).conn

    def get(self, text: str, rate: float, compressor: str) -> str | None:
        if not self.db_path.exists():
            return None
        conn = self._conn()
        try:
            row = conn.execute(f"SELECT compressed_text FROM {TABLE} WHERE key = ?",
                               (cache_key(text, rate, compressor),)).fetchone()
        finally:
            conn.close()
        return None if row is None else str(row[0])

    def put(self, text: str, rate: float, compressor: str, compressed: str,
            seconds: float) -> None:
        conn = self._conn()
        try:
            conn.execute(
                f"INSERT OR REPLACE INTO {TABLE} (key, text_sha256, rate, compressor, "
                "compressed_text, seconds, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cache_key(text, rate, compressor),
                 hashlib.sha256(text.encode("utf-8")).hexdigest(), rate, compressor,
                 compressed, seconds, time.time()))
        finally:
            conn.close()


def promoted(db_path: Path, prompt_hash: str, model: str) -> bool:
    """Has this prompt hash passed `devloop eval` on ``model``?"""
    if not db_path.exists():
        return False
    conn = sqlite3.connect(str(db_path))
    try:
        row = conn.execute("SELECT 1 FROM promoted WHERE prompt_hash = ? AND model = ?",
                           (prompt_hash, model)).fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return row is not None
