"""The promotion file beside the eval sets, and the eval result cache key.

``devloop.promotions.json`` (next to the eval set file) records each promoted prompt hash so
that ``devloop eval --gate`` in CI, where the developer's database is absent, can check it:
commit it with the prompt. The database side is devloop.store.evals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devloop.evals.evalset import sha256_json

PROMOTIONS_FILE = "devloop.promotions.json"


def cache_key(prompt_hash: str, case_hash: str, model: str, params: dict[str, Any]) -> str:
    return sha256_json({"prompt": prompt_hash, "case": case_hash, "model": model,
                        "params": params})


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
