"""Eval results in SQLite: runs, per-case results that double as the result cache, and
promoted prompts (tables ``eval_runs``, ``eval_results``, ``promotions``; migration m007).

The cache key (devloop.evals.promotions.cache_key) is sha256(prompt hash, case hash, model,
parameters); an unchanged case on an unchanged prompt and model is answered from the last
result that was not itself an error. The reads behind the TUI's ladder are here too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from devloop.store.db import open_db
from devloop.store.reports import LedgerReader


class EvalStore:
    def __init__(self, db_path: Path) -> None:
        self.db = open_db(db_path)

    def close(self) -> None:
        self.db.conn.close()

    # -- result cache --------------------------------------------------------------------
    def cached(self, key: str) -> dict[str, Any] | None:
        """The last fresh (not cache-served, not errored) result for ``key``."""
        rows = list(self.db.query(
            "SELECT * FROM eval_results WHERE cache_key = ? AND cached = 0 AND error IS NULL "
            "ORDER BY id DESC LIMIT 1", [key]))
        return rows[0] if rows else None

    # -- recording -----------------------------------------------------------------------
    def record(self, run: dict[str, Any], results: list[dict[str, Any]]) -> None:
        with self.db.conn:
            self.db["eval_runs"].insert(run)
            if results:
                self.db["eval_results"].insert_all(results)

    def promote(self, prompt_hash: str, model: str, evalset: str, file: str | None,
                run_id: str, pass_rate: float, threshold: float) -> None:
        self.db["promotions"].upsert(
            {"prompt_hash": prompt_hash, "model": model, "evalset": evalset, "file": file,
             "run_id": run_id, "pass_rate": pass_rate, "threshold": threshold,
             "ts": time.time()},
            pk=("prompt_hash", "model"))

    def promote_content(self, row: dict[str, Any]) -> None:
        """A promotion for one content hash and model (devloop.evals.gate; migration m100)."""
        self.db["eval_promotions"].upsert({**row, "ts": time.time()},
                                          pk=("content_hash", "model"))

    def content_promotions(self, evalset: str) -> list[dict[str, Any]]:
        """The eval set's promotions by content hash, newest first."""
        return list(self.db.query(
            "SELECT * FROM eval_promotions WHERE evalset = ? ORDER BY ts DESC", [evalset]))

    def promotion(self, prompt_hash: str, model: str) -> dict[str, Any] | None:
        rows = list(self.db.query(
            "SELECT * FROM promotions WHERE prompt_hash = ? AND model = ?", [prompt_hash, model]))
        return rows[0] if rows else None




# -- reads behind the TUI (Prompts and Evals screens) ---------------------------------------------
def latest_run(reader: LedgerReader, prompt_hash: str) -> dict[str, Any] | None:
    row = reader.one("SELECT * FROM eval_runs WHERE prompt_hash = ? ORDER BY ts DESC, rowid DESC "
                     "LIMIT 1", [prompt_hash])
    return dict(row) if row else None


def promotion_of(reader: LedgerReader, prompt_hash: str) -> dict[str, Any] | None:
    row = reader.one("SELECT * FROM promotions WHERE prompt_hash = ? ORDER BY ts DESC LIMIT 1",
                     [prompt_hash])
    return dict(row) if row else None


def recent_runs(reader: LedgerReader, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first."""
    return [dict(r) for r in reader.query(
        "SELECT * FROM eval_runs ORDER BY ts DESC, rowid DESC LIMIT ?", [limit])]


def run_results(reader: LedgerReader, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    """A run's per-case rows, in the order they were written."""
    return [dict(r) for r in reader.query(
        "SELECT * FROM eval_results WHERE run_id = ? ORDER BY id LIMIT ?", [run_id, limit])]
