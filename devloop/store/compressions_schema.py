"""The ``ladder_compressions`` table (a leaf module: the migration imports it)."""

from __future__ import annotations

import sqlite_utils

TABLE = "ladder_compressions"


def create_table(db: sqlite_utils.Database) -> None:
    db[TABLE].create(
        {"key": str, "text_sha256": str, "rate": float, "compressor": str,
         "compressed_text": str, "seconds": float, "created": float},
        pk="key",
    )
