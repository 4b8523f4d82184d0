"""The ``prompt_checks`` table (migration m006): `devloop check`/`watch` stage results, keyed
by the prompt's content hash. Writes go through the one DB writer; reads open their own
connection (WAL, busy_timeout) or use the TUI's LedgerReader."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from devloop.store.db import connect
from devloop.store.reports import LedgerReader
from devloop.store.writer import DbWriter

# The tables that record a prompt hash per file (what "stale" is judged against).
FILE_TABLES = ("prompt_checks", "eval_runs")


def insert_check(writer: DbWriter, row: dict[str, Any]) -> Future[int]:
    """``row``: prompt_hash, file, name, stage, status, result_json, created."""
    return writer.insert("prompt_checks", row)


def latest_checks(db_path: Path, file: str | None = None,
                  prompt_hash: str | None = None) -> list[dict[str, Any]]:
    """The newest row per (file, stage), optionally for one file or prompt hash."""
    if not db_path.exists():
        return []
    conn = connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        where, args = [], []
        if file is not None:
            where.append("file = ?")
            args.append(file)
        if prompt_hash is not None:
            where.append("prompt_hash = ?")
            args.append(prompt_hash)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        try:
            rows = conn.execute(
                f"SELECT * FROM prompt_checks {clause} ORDER BY created DESC, id DESC", args
            ).fetchall()
        except sqlite3.OperationalError:  # a database no devloop has migrated yet
            return []
    finally:
        conn.close()
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        key = (row["file"], row["stage"])
        if key not in seen:
            seen.add(key)
            out.append(dict(row))
    return out


def checks_for_prompt(reader: LedgerReader, prompt_hash: str,
                      limit: int = 50) -> list[dict[str, Any]]:
    """This prompt's stage rows, newest first."""
    return [dict(r) for r in reader.query(
        "SELECT * FROM prompt_checks WHERE prompt_hash = ? ORDER BY created DESC, id DESC "
        "LIMIT ?", [prompt_hash, limit])]


def other_prompt_recorded(reader: LedgerReader, table: str, files: list[str],
                          prompt_hash: str) -> bool:
    """Whether ``table`` holds a row for one of ``files`` under another prompt hash (the
    prompt changed since those results)."""
    if table not in FILE_TABLES:
        raise ValueError(f"{table}: not one of {', '.join(FILE_TABLES)}")
    marks = ", ".join("?" for _ in files)
    return reader.one(f"SELECT 1 FROM {table} WHERE file IN ({marks}) AND prompt_hash != ? "
                      "LIMIT 1", [*files, prompt_hash]) is not None
