"""One devloop on loopback for the agent faces: embedded, a scripted OpenAI-compatible tier
(shared) and a scripted Anthropic frontier (litellm with api_base), as Claude Code and Codex
would reach them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.upstream import ScriptedUpstream
from tests.helpers import RunningServer, start_server

PROFILE = """
name: agents-test
production_model: anthropic/claude-sonnet-4-6
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  shared:   {{backend: openai, base_url: "{url}/v1", model: scripted-coder}}
  frontier: {{backend: litellm, model: anthropic/claude-sonnet-4-6, api_base: "{url}"}}
aliases:
  "claude-*haiku*": embedded
  "claude-*": frontier
  "gpt-*": shared
routes:
  - {{tier: embedded}}
fallbacks: [embedded]
cache: {{enabled: true, ttl: 1h, max_temperature: 0.0}}
"""


@pytest.fixture(scope="package")
def scripted() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="package")
def agents_server(tmp_path_factory: pytest.TempPathFactory,
                  scripted: ScriptedUpstream) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("agents")
    profile = folder / "agents-test.yaml"
    profile.write_text(PROFILE.format(url=scripted.url))
    server = start_server(profile, folder / "home", env={"ANTHROPIC_API_KEY": ""})
    yield server
    server.stop()


def ledger(db: Path, request_id: str | None = None, **where: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        clauses = [f"{k} = ?" for k in where] + (["request_id = ?"] if request_id else [])
        params = [*where.values(), *([request_id] if request_id else [])]
        sql = "SELECT * FROM calls" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return [dict(r) for r in conn.execute(sql + " ORDER BY ts", params)]
    finally:
        conn.close()
