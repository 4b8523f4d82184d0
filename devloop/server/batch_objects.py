"""Small pieces of devloop's Files and Batch API: ids, the caller, visibility, file objects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass(slots=True)
class CallerContext:
    """Who created the batch: every line is attributed and budgeted as theirs."""

    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    forced_tier: str | None = None
    cache_mode: str = "default"


def visible(row: dict[str, Any] | None, owner: str | None) -> bool:
    """In team mode a key sees only its own files and batches; solo, everything."""
    return row is not None and (owner is None or row.get("owner") == owner)


def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"],
            "created_at": row["created_at"], "filename": row["filename"],
            "purpose": row["purpose"], "status": "processed", "expires_at": None,
            "status_details": None}
