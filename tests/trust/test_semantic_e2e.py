"""Must show 3 (real server, real embedded model embeddings): pairs that differ in a number,
a negation or a named entity are misses; a true paraphrase is a hit with its similarity and
matched entry on the ledger row; the judged false-positive rate is reported."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import RunningServer, start_server, write_profile
from tests.trust.scripted_upstream import ScriptedUpstream, last_user_text
from tests.trust.test_audit_sampling import wait_for

# The threshold is low on purpose: the embedding finds the candidates, the guard decides.
pytestmark = pytest.mark.slow  # real server + embedded model

PROFILE = """
name: semantic
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {{backend: embedded, model: smollm2-135m}}
  frontier: {{backend: openai, base_url: "{url}", model: prod-model}}
routes: [{{tier: embedded}}]
prices: {{prod-model: {{input: 1.0, output: 2.0}}}}
cache: {{enabled: true, ttl: 1h, semantic: true, semantic_threshold: 0.5}}
audit: {{sample: 1.0, replay_on: frontier, usd: 1.0, interval: 0.3}}
"""


def judge(body: dict[str, Any]) -> str:
    return '{"verdict": "disagree"}' if "Reply with a JSON" in last_user_text(body) else "ref"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[RunningServer, ScriptedUpstream]]:
    folder = tmp_path_factory.mktemp("semantic")
    with ScriptedUpstream(judge) as up:
        server = start_server(write_profile(folder / "s.yaml", PROFILE.format(url=up.base_url)),
                              folder / "home")
        yield server, up
        server.stop()


def ask(server: RunningServer, text: str) -> httpx.Response:
    resp = httpx.post(server.base_url + "/v1/chat/completions", timeout=120,
                      headers={"X-Devloop-Feature": "faq"},
                      json={"model": "auto", "max_tokens": 8, "temperature": 0.0,
                            "messages": [{"role": "user", "content": text}]})
    assert resp.status_code == 200, resp.text
    return resp


def row(server: RunningServer, request_id: str) -> dict[str, Any]:
    with sqlite3.connect(server.db_path) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM calls WHERE request_id = ?", (request_id,)).fetchone()
    assert found is not None
    return dict(found)


def test_guarded_semantic_cache_end_to_end(setup: tuple[RunningServer, ScriptedUpstream]
                                           ) -> None:
    server, _ = setup
    first = ask(server, "What is the capital of France?")
    assert first.headers["x-devloop-cache"] == "miss"
    ask(server, "Is 7919 a prime number?")
    for text in ("What is the capital of Germany?", "Is 7917 a prime number?",
                 "What is not the capital of France?"):
        resp = ask(server, text)
        assert resp.headers["x-devloop-cache"] == "miss", text
        assert row(server, resp.headers["x-request-id"])["semantic_similarity"] is None
    para = ask(server, "What's the capital city of France?")
    assert para.headers["x-devloop-cache"] == "hit"
    assert para.json()["choices"][0]["message"]["content"] == \
        first.json()["choices"][0]["message"]["content"]
    hit = row(server, para.headers["x-request-id"])
    assert 0.5 <= hit["semantic_similarity"] <= 1.0
    assert "semantic match" in hit["route_reason"]  # the matched entry
    # every call was sampled; the semantic hit too, and the judge said it was wrong
    report = wait_for(server.home, 6)
    (faq,) = report["routes"]
    assert faq["semantic_judged"] == 1 and faq["semantic_false_positive_rate"] == 1.0
