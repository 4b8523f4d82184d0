"""Must-show 4: local devloop -> team devloop -> model, for chat and streaming.

The developer's devloop has a `shared` tier pointing at the team server with the
developer's key (api_key_env). Both ledgers book each call under the same request id and
feature (X-Devloop-Feature passes through), with the same token counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from tests.helpers import RunningServer, start_server, write_profile
from tests.team.conftest import rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def laptop(team: RunningServer, team_keys: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    profile = f"""
name: laptop
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "{team.base_url}/v1", model: embedded,
            api_key_env: DEVLOOP_SHARED_KEY}}
routes:
  - {{tier: shared}}
cache: {{enabled: false}}
"""
    path = write_profile(tmp_path_factory.mktemp("laptop") / "laptop.yaml", profile)
    server = start_server(path, tmp_path_factory.mktemp("laptop-home"),
                          env={"DEVLOOP_SHARED_KEY": team_keys["chain"]})
    yield server
    server.stop()


def both_rows(laptop: RunningServer, team: RunningServer, rid: str) -> tuple[tuple, tuple]:  # type: ignore[type-arg]
    sql = ("SELECT tier, feature, prompt_tokens, completion_tokens, status, stream, user, key_id "
           "FROM calls WHERE request_id = ?")
    (mine,) = rows(laptop.db_path, sql, (rid,))
    (theirs,) = rows(team.db_path, sql, (rid,))
    return mine, theirs


def test_chat_goes_through_the_team_server_and_both_ledgers_agree(laptop: RunningServer,
                                                                  team: RunningServer) -> None:
    client = openai.OpenAI(base_url=laptop.base_url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8,
        extra_headers={"X-Devloop-Feature": "chain-chat"})
    resp = raw.parse()
    assert raw.headers["x-devloop-tier"] == "shared"
    assert resp.choices[0].message.content and resp.usage.completion_tokens > 0
    mine, theirs = both_rows(laptop, team, raw.headers["x-request-id"])
    assert mine[:2] == ("shared", "chain-chat") and theirs[:2] == ("embedded", "chain-chat")
    assert mine[2:5] == theirs[2:5] == (resp.usage.prompt_tokens, resp.usage.completion_tokens,
                                        200)
    assert theirs[6:] == ("chain", "chain")  # booked to the key's user on the team side


def test_streaming_goes_through_the_team_server_and_both_ledgers_agree(laptop: RunningServer,
                                                                       team: RunningServer
                                                                       ) -> None:
    client = openai.OpenAI(base_url=laptop.base_url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Tell me about rivers."}],
        max_tokens=24, stream=True, stream_options={"include_usage": True},
        extra_headers={"X-Devloop-Feature": "chain-stream"})
    pieces, usage = [], None
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert len(pieces) > 1 and usage is not None
    mine, theirs = both_rows(laptop, team, raw.headers["x-request-id"])
    assert mine[:2] == ("shared", "chain-stream") and theirs[:2] == ("embedded", "chain-stream")
    assert mine[2:6] == theirs[2:6] == (usage.prompt_tokens, usage.completion_tokens, 200, 1)
    assert theirs[6:] == ("chain", "chain")


def test_ollama_clients_of_the_laptop_reach_the_team_server_too(laptop: RunningServer,
                                                                team: RunningServer) -> None:
    reply = ollama.Client(host=laptop.base_url, headers={"X-Devloop-Feature": "chain-ollama"}
                          ).chat(model="shared", messages=[{"role": "user", "content": "hi"}],
                                 options={"num_predict": 4})
    assert reply.message.content is not None
    count = "SELECT count(*) FROM calls WHERE feature = 'chain-ollama'"
    assert rows(laptop.db_path, count) == rows(team.db_path, count) == [(1,)]


def test_metrics_on_the_laptop_show_the_shared_tier(laptop: RunningServer) -> None:
    httpx.post(laptop.base_url + "/v1/chat/completions", timeout=60,
               json={"model": "auto", "max_tokens": 2,
                     "messages": [{"role": "user", "content": "hi"}]})
    text = httpx.get(laptop.base_url + "/metrics").text  # open: not in team mode
    assert 'devloop_requests_total{' in text and 'tier="shared"' in text
    assert "devloop_request_duration_seconds_bucket" in text
