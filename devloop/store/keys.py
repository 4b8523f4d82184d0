"""Team API keys: shown once, stored as salted SHA-256 hashes, compared in constant time.

Keys carry 256 random bits, so a fast salted hash is as strong as a slow KDF here and
keeps verification off the request's critical path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from devloop.store.db import connect, open_db

log = logging.getLogger("devloop.team")

PREFIX = "dlk_"
ROW_COLUMNS = ("name, key_prefix, salt, key_hash, revoked IS NOT NULL, budget_usd, "
               "budget_period, rpm, max_concurrent, created")


class KeyError_(ValueError):
    """A user mistake about keys (duplicate or unknown name)."""


def salted_hash(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def create_key(db: sqlite_utils.Database, name: str, budget_usd: float | None = None,
               period: str = "day", rpm: int | None = None,
               max_concurrent: int | None = None) -> str:
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise KeyError_("a key name uses letters, digits, '-', '_' or '.'")
    existing = list(db.query("SELECT 1 FROM keys WHERE name = ? AND revoked IS NULL", [name]))
    if existing:
        raise KeyError_(f"a key named {name!r} exists; revoke it first")
    key = PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    # a new row even when a revoked key had this name: that key's history stays its own
    db["keys"].insert({
        "name": name, "key_prefix": key[: len(PREFIX) + 6], "salt": salt,
        "key_hash": salted_hash(salt, key), "created": time.time(), "last_used": None,
        "revoked": None, "budget_usd": budget_usd, "budget_period": period if budget_usd else None,
        "rpm": rpm, "max_concurrent": max_concurrent,
    })
    return key


def revoke_key(db: sqlite_utils.Database, name: str) -> None:
    rows = list(db.query("SELECT id FROM keys WHERE name = ? AND revoked IS NULL", [name]))
    if not rows:
        raise KeyError_(f"no active key named {name!r}")
    db.execute("UPDATE keys SET revoked = ? WHERE id = ?", [time.time(), rows[0]["id"]])
    db.conn.commit()


# A key's calls: its name (exactly: = compares bytes, no case folding) during its lifetime.
KEY_CALLS = ("c.key_id = k.name AND c.ts >= k.created "
             "AND (k.revoked IS NULL OR c.ts <= k.revoked)")


def list_keys(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every key, revoked ones too (oldest first): dates, spend and limits; never the key
    or its hash. A key's spend is its own calls, not an earlier key's of the same name."""
    sql = f"""
        SELECT k.id, k.name, k.key_prefix, k.created, k.last_used, k.revoked, k.budget_usd,
               k.budget_period, k.rpm, k.max_concurrent,
               (SELECT coalesce(sum(cost_usd), 0) FROM calls c WHERE {KEY_CALLS}) AS spend_usd,
               (SELECT count(*) FROM calls c WHERE {KEY_CALLS}) AS calls,
               (SELECT max(ts) FROM calls c WHERE {KEY_CALLS}) AS last_call
        FROM keys k ORDER BY k.created, k.id
    """
    return list(db.query(sql))


def key_prefix(presented: str) -> str:
    """The stored, shown part of a key (how a presented key finds its candidate rows)."""
    return presented[: len(PREFIX) + 6]


def match_key(rows: Iterable[KeyRow], presented: str) -> KeyRow | None:
    """The row whose salted hash matches ``presented`` (a constant-time compare), if any."""
    if not presented.startswith(PREFIX):
        return None
    for row in rows:
        if hmac.compare_digest(salted_hash(row.salt, presented), row.key_hash):
            return row
    return None


def touch_job(name: str, now: float) -> Callable[[sqlite3.Connection], Any]:
    """A writer job that records when key ``name`` was last used."""
    return lambda conn: conn.execute(
        "UPDATE keys SET last_used = ? WHERE name = ? AND revoked IS NULL", (now, name))


def key_spend_since(db: sqlite_utils.Database, name: str, start: float,
                    created: float = 0.0) -> float:
    """What key ``name`` (the one created at ``created``) spent from ``start`` on (known
    prices only): an earlier, revoked key of the same name is not its spend."""
    return float(db.execute("SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE key_id = ? "
                            "AND ts >= ?", [name, max(start, created)]).fetchone()[0])


def count_active_keys(path: Path) -> int:
    db = open_db(path)
    try:
        return int(db.execute("SELECT count(*) FROM keys WHERE revoked IS NULL").fetchone()[0])
    finally:
        db.close()


# -- the keys in memory (team mode) ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyRow:
    name: str
    prefix: str
    salt: str
    key_hash: str
    revoked: bool
    budget_usd: float | None
    budget_period: str | None
    rpm: int | None
    max_concurrent: int | None
    created: float = 0.0


class KeyRing:
    """The keys table in memory: verified keys are found by hash without touching SQLite."""

    def __init__(self, db_path: Path, refresh_s: float) -> None:
        self.db_path, self.refresh_s = db_path, refresh_s
        self.rows: dict[str, KeyRow] = {}
        self.version = 0  # bumped whenever the table's content changed
        self._by_prefix: dict[str, list[KeyRow]] = {}
        # sha256(key) -> (name, stored hash). A dict lookup on a digest of the key leaks
        # nothing usable through timing; the salted compare below is constant time.
        self._verified: dict[bytes, tuple[str, str]] = {}
        self._loaded_at = float("-inf")
        self._conn: sqlite3.Connection | None = None

    def refresh(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_s:
            return False
        self._loaded_at = now
        try:
            if self._conn is None:
                self._conn = connect(self.db_path)
            # a name's active key is read last: it is the one the name stands for
            cur = self._conn.execute(f"SELECT {ROW_COLUMNS} FROM keys "
                                     "ORDER BY revoked IS NULL, created")
            every = [KeyRow(*r[:4], bool(r[4]), *r[5:]) for r in cur.fetchall()]
            rows = {row.name: row for row in every}
        except sqlite3.Error as exc:
            log.warning("could not re-read the keys table (keeping the last copy): %s", exc)
            return False
        if rows == self.rows:
            return False
        self.rows = rows
        self.version += 1
        self._by_prefix = {}
        for row in every:  # revoked keys too: presenting one answers "revoked"
            self._by_prefix.setdefault(row.prefix, []).append(row)
        self._verified = {
            digest: (name, stored) for digest, (name, stored) in self._verified.items()
            if (row := rows.get(name)) is not None and not row.revoked and row.key_hash == stored
        }
        return True

    def verify(self, presented: str) -> tuple[str | None, str]:
        """-> (key name, "") when valid, else (None, "invalid" | "revoked")."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        known = self._verified.get(digest)
        if known is not None:
            return known[0], ""
        row = match_key(self._by_prefix.get(key_prefix(presented), ()), presented)
        if row is None:
            return None, "invalid"
        if row.revoked:
            return None, "revoked"
        self._verified[digest] = (row.name, row.key_hash)
        return row.name, ""

    def active(self) -> list[KeyRow]:
        return [row for row in self.rows.values() if not row.revoked]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
