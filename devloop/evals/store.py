"""Where eval results live: SQLite (runs, per-case results that double as the result cache,
promotions) and a promotion file beside the eval sets that CI can read.

The cache key is sha256(prompt hash, case hash, model, parameters); an unchanged case on an
unchanged prompt and model is answered from the last result that was not itself an error.

``devloop.promotions.json`` (next to the eval set file) records each promoted prompt hash so
that ``devloop eval --gate`` in CI, where the developer's database is absent, can check it:
commit it with the prompt.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devloop.evals.evalset import sha256_json
from devloop.store.db import open_db

PROMOTIONS_FILE = "devloop.promotions.json"


def cache_key(prompt_hash: str, case_hash: str, model: str, params: dict[str, Any]) -> str:
    return sha256_json({"prompt": prompt_hash, "case": case_hash, "model": model,
                        "params": params})


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
        """A promotion for one content hash and model (devloop.evals.promotion)."""
        self.db["eval_promotions"].upsert({**row, "ts": time.time()},
                                          pk=("content_hash", "model"))

    def content_promotions(self, evalset: str) -> list[dict[str, Any]]:
        """The eval set's promotions, newest first."""
        return list(self.db.query(
            "SELECT * FROM eval_promotions WHERE evalset = ? ORDER BY ts DESC", [evalset]))

    def promotion(self, prompt_hash: str, model: str) -> dict[str, Any] | None:
        rows = list(self.db.query(
            "SELECT * FROM promotions WHERE prompt_hash = ? AND model = ?", [prompt_hash, model]))
        return rows[0] if rows else None


# -- the promotion file ------------------------------------------------------------------------
def promotions_path(evalset_file: Path) -> Path:
    return evalset_file.parent / PROMOTIONS_FILE


def read_promotions(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    entries = data.get("promotions") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, dict)]


def file_promotion(evalset_file: Path, prompt_hash: str, model: str) -> dict[str, Any] | None:
    for entry in read_promotions(promotions_path(evalset_file)):
        if entry.get("prompt_hash") == prompt_hash and entry.get("model") == model:
            return entry
    return None


def write_promotion(evalset_file: Path, evalset: str, prompt_hash: str, model: str,
                    pass_rate: float, threshold: float, run_id: str) -> Path:
    """Add (or refresh) this prompt hash in the promotion file; sorted for small diffs."""
    path = promotions_path(evalset_file)
    entries = [e for e in read_promotions(path)
               if not (e.get("evalset") == evalset and e.get("prompt_hash") == prompt_hash
                       and e.get("model") == model)]
    entries.append({
        "evalset": evalset, "file": evalset_file.name, "prompt_hash": prompt_hash,
        "model": model, "pass_rate": round(pass_rate, 4), "threshold": threshold,
        "run_id": run_id, "promoted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    entries.sort(key=lambda e: (str(e.get("evalset")), str(e.get("promoted_at"))))
    body = {"about": "Prompt hashes that passed `devloop eval`; `devloop eval --gate` reads "
                     "this file. Commit it with the prompt.", "promotions": entries}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path
