from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.batch.batch_upstream import BatchUpstream


@pytest.fixture
def upstream() -> Iterator[BatchUpstream]:
    with BatchUpstream() as up:
        yield up


@pytest.fixture(autouse=True)
def _offline_prices() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def evalset(path: Path, name: str = "greet") -> Path:
    """Two cases the echoing upstream passes, one it fails."""
    path.write_text(f"""
name: {name}
threshold: 0.5
temperature: 0
max_tokens: 200
prompt:
  system: You are a terse assistant.
  messages:
    - {{role: user, content: "Say hello to {{{{name}}}}."}}
cases:
  - id: alice
    vars: {{name: Alice}}
    assert: [{{type: contains, value: "Alice"}}]
  - id: bob
    vars: {{name: Bob}}
    assert: [{{type: contains, value: "Bob"}}]
  - id: carol
    vars: {{name: Carol}}
    assert: [{{type: contains, value: "zebra"}}]
""")
    return path


def profile(path: Path, production_model: str) -> Path:
    path.write_text(f"""
name: batch-client
production_model: {production_model}
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
routes: [{{tier: embedded}}]
""")
    return path


def ledger(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY id")]


def provider_batches(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM provider_batches")]
