"""Stored request/response bodies (`store_bodies: true` in the profile) for the routing audit.

Off by default. When on, each successful chat call's canonical request (the JSON body after
routing, never the headers) and the answer's text are written in the same writer
transaction as its ledger row, so a body never exists without its row.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devloop.store.calls import CallRecord
from devloop.types import ChatRequest, Completion

WriteJob = Callable[[sqlite3.Connection], Any]
# OR REPLACE: X-Request-Id comes from the client, and a reused id must never make the
# ledger insert it shares a transaction with fail.
INSERT_BODY = ("INSERT OR REPLACE INTO call_bodies (request_id, ts, feature, tier, model, "
               "request_json, response_text) VALUES (?, ?, ?, ?, ?, ?, ?)")


def response_text(completion: Completion) -> str:
    """The answer's text; a tool-call-only answer is kept as its tool calls' JSON."""
    if completion.text or not completion.tool_calls:
        return completion.text
    return json.dumps(completion.tool_calls, ensure_ascii=False)


def body_job(rec: CallRecord, req: ChatRequest, completion: Completion,
             then: WriteJob | None = None) -> WriteJob:
    """A writer job that stores this call's body, then runs ``then`` (the cache's write)."""
    values = (rec.request_id, rec.ts or time.time(), rec.feature, rec.tier, rec.model,
              req.model_dump_json(exclude_none=True), response_text(completion))

    def job(conn: sqlite3.Connection) -> None:
        conn.execute(INSERT_BODY, values)
        if then is not None:
            then(conn)

    return job


@dataclass(slots=True)
class StoredCall:
    request_id: str
    ts: float
    feature: str | None
    tier: str
    model: str | None
    request: dict[str, Any]
    response_text: str


def count_bodies(conn: sqlite3.Connection) -> int:
    """How many bodies are stored (0 when the table does not exist yet)."""
    try:
        return int(conn.execute("SELECT count(*) FROM call_bodies").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def load_bodies(conn: sqlite3.Connection, tiers: tuple[str, ...], since_ts: float | None = None,
                feature_glob: str | None = None, exclude_feature: str | None = None
                ) -> list[StoredCall]:
    """Stored calls served by ``tiers``, oldest first (a stable order for seeded sampling)."""
    where = [f"tier IN ({', '.join('?' * len(tiers))})"]
    params: list[Any] = list(tiers)
    if since_ts is not None:
        where.append("ts >= ?")
        params.append(since_ts)
    if feature_glob is not None:
        where.append("feature GLOB ?")
        params.append(feature_glob)
    if exclude_feature is not None:
        where.append("(feature IS NULL OR feature != ?)")
        params.append(exclude_feature)
    sql = (f"SELECT request_id, ts, feature, tier, model, request_json, response_text "
           f"FROM call_bodies WHERE {' AND '.join(where)} ORDER BY ts, request_id")
    out = []
    for rid, ts, feature, tier, model, request_json, text in conn.execute(sql, params):
        try:
            request = json.loads(request_json)
        except (TypeError, json.JSONDecodeError):
            continue  # written by us, so only a hand-edited row can be unreadable
        if isinstance(request, dict):
            out.append(StoredCall(rid, ts, feature, tier, model, request, text or ""))
    return out
