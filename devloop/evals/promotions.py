"""The promotion file beside the eval sets, and the eval result cache key.

``devloop.promotions.json`` (next to the eval set file) records each promotion (the eval
set's content hash, its model, threshold and case hashes) so that ``devloop eval --gate`` in
CI, where the developer's database is absent, can check it: commit it with the prompt. The
database side is devloop.store.evals; the rules are devloop.evals.gate.
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


def write_promotion(evalset_file: Path, entry: dict[str, Any]) -> Path:
    """Add (or refresh) this content hash in the promotion file; sorted for small diffs.
    Older records of the same eval set and model are replaced: the file says what passed
    last (devloop.evals.gate writes the entry: content hash, model, threshold, case hashes)."""
    path = promotions_path(evalset_file)
    entries = [e for e in read_promotions(path)
               if not (e.get("evalset") == entry["evalset"] and e.get("model") == entry["model"])]
    entries.append({**entry, "file": evalset_file.name,
                    "promoted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    entries.sort(key=lambda e: (str(e.get("evalset")), str(e.get("model"))))
    body = {"about": "Eval sets that passed `devloop eval`, by content hash and model; "
                     "`devloop eval --gate` reads this file. Commit it with the prompt.",
            "promotions": entries}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path
