"""Team API keys: shown once, stored as salted SHA-256 hashes, compared in constant time.

Keys carry 256 random bits, so a fast salted hash is as strong as a slow KDF here and
keeps verification off the request's critical path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from devloop.store.db import open_db

PREFIX = "dlk_"


class KeyError_(ValueError):
    """A user mistake about keys (duplicate or unknown name)."""


@dataclass(slots=True)
class KeyInfo:
    name: str
    budget_usd: float | None
    budget_period: str | None
    rpm: int | None
    max_concurrent: int | None


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


def key_period_spend(db: sqlite_utils.Database, name: str, created: float, start: float) -> float:
    """What the key created at ``created`` spent since ``start``."""
    row = db.execute("SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE key_id = ? AND ts >= ?",
                     [name, max(start, created)]).fetchone()
    return float(row[0])


def verify_key(db: sqlite_utils.Database, presented: str) -> KeyInfo | None:
    if not presented.startswith(PREFIX):
        return None
    rows = db.query("SELECT * FROM keys WHERE key_prefix = ? AND revoked IS NULL",
                    [presented[: len(PREFIX) + 6]])
    for row in rows:
        if hmac.compare_digest(salted_hash(row["salt"], presented), row["key_hash"]):
            return KeyInfo(row["name"], row["budget_usd"], row["budget_period"], row["rpm"],
                           row["max_concurrent"])
    return None


def count_active_keys(path: Path) -> int:
    db = open_db(path)
    try:
        return int(db.execute("SELECT count(*) FROM keys WHERE revoked IS NULL").fetchone()[0])
    finally:
        db.close()
