"""The ``cache`` table (the exact response cache's rows): the only SQL that touches it."""

from __future__ import annotations

import sqlite3

from devloop.store.calls import WriteJob

Connection = sqlite3.Connection


def read_entry(conn: Connection, key: str) -> tuple[float, bytes] | None:
    """-> (expires as a unix time, encoded body), or None when there is no row for ``key``."""
    row = conn.execute("SELECT expires, body FROM cache WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    return row[0], row[1] if isinstance(row[1], bytes) else row[1].encode()


def put_job(key: str, namespace: str, model: str, body: bytes, prompt_tokens: int,
            completion_tokens: int, created: float, expires: float) -> WriteJob:
    """A write job storing (or replacing) one entry; times are unix seconds."""
    row = (key, namespace, model, body.decode(), prompt_tokens, completion_tokens, created,
           expires)
    return lambda c: c.execute(
        "INSERT OR REPLACE INTO cache (key, namespace, model, body, prompt_tokens, "
        "completion_tokens, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
