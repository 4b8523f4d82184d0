"""The semantic cache's persisted index (``semantic_entries``): vector, prompt, answer."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from typing import Any

from devloop.store.calls import WriteJob
from devloop.types import Completion, Usage


def completion_json(c: Completion) -> str:
    return json.dumps({"text": c.text, "model": c.model, "finish_reason": c.finish_reason,
                       "usage": asdict(c.usage), "tool_calls": c.tool_calls})


def completion_from_json(text: str) -> Completion:
    d = json.loads(text)
    return Completion(d["text"], d["model"], d["finish_reason"], Usage(**d["usage"]),
                      d.get("tool_calls"))


def put_job(key: str, bucket: str, created: float, vector: bytes, prompt: str,
            completion: Completion, max_entries: int) -> WriteJob:
    values = (key, bucket, created, vector, prompt, completion_json(completion))

    def job(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO semantic_entries (key, bucket, created, vector, "
                     "prompt, completion_json) VALUES (?, ?, ?, ?, ?, ?)", values)
        conn.execute("DELETE FROM semantic_entries WHERE key IN (SELECT key FROM "
                     "semantic_entries ORDER BY created DESC LIMIT -1 OFFSET ?)", (max_entries,))

    return job


def load_entries(conn: sqlite3.Connection, since: float, limit: int
                 ) -> list[tuple[str, str, float, bytes, str, Completion]]:
    """The newest entries created after ``since``, oldest first."""
    try:
        rows = conn.execute("SELECT key, bucket, created, vector, prompt, completion_json FROM "
                            "semantic_entries WHERE created >= ? ORDER BY created DESC LIMIT ?",
                            (since, limit)).fetchall()
    except sqlite3.OperationalError:
        return []
    out: list[Any] = []
    for key, bucket, created, vector, prompt, cj in reversed(rows):
        try:
            out.append((key, bucket, float(created), bytes(vector), prompt or "",
                        completion_from_json(cj)))
        except (ValueError, KeyError, TypeError):
            continue
    return out
