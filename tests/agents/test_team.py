"""Team mode: Claude Code's x-api-key is a team key too; errors keep each face's shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.agents.conftest import ledger
from tests.agents.upstream import ScriptedUpstream
from tests.helpers import RunningServer, start_server
from tests.team.conftest import add_key

PROFILE = """
name: team-agents
production_model: anthropic/claude-sonnet-4-6
tiers:
  shared: {{backend: openai, base_url: "{url}/v1", model: scripted-coder}}
aliases: {{"claude-*": shared, "gpt-*": shared}}
routes: [{{tier: shared}}]
"""


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, scripted: ScriptedUpstream
         ) -> Iterator[tuple[RunningServer, str]]:
    folder: Path = tmp_path_factory.mktemp("team-agents")
    key = add_key(folder / "home", "carol")
    profile = folder / "team-agents.yaml"
    profile.write_text(PROFILE.format(url=scripted.url))
    server = start_server(profile, folder / "home", args=("--team",))
    yield server, key
    server.stop()


def test_claude_code_key_in_x_api_key(team: tuple[RunningServer, str]) -> None:
    server, key = team
    client = anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().content[0].text.startswith("scripted answer")
    assert ledger(server.db_path, raw.headers["x-request-id"])[0]["user"] == "carol"
    bad = anthropic.Anthropic(base_url=server.base_url, api_key="dl-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        bad.messages.create(model="claude-sonnet-4-6", max_tokens=16,
                            messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["type"] == "error"  # Anthropic's shape on /v1/messages
    assert err.value.body["error"]["type"] == "authentication_error"


def test_codex_bearer_key(team: tuple[RunningServer, str]) -> None:
    server, key = team
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
    assert client.responses.create(model="gpt-5-codex", input="hi").output_text.startswith(
        "scripted answer")
