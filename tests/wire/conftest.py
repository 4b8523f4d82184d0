from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, start_server, write_profile
from tests.wire.scripted import ScriptedUpstream

PROFILE = """
name: wire
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:    {{backend: ollama, model: "scripted:latest", base_url: "{url}", fallback: embedded}}
  embedded: {{backend: embedded, model: smollm2-135m}}
  shared:   {{backend: openai, base_url: "{url}/v1", model: scripted-model}}
routes:
  - {{tier: local}}
fallbacks: [local, embedded, shared]
cache: {{enabled: true, ttl: 1h, max_temperature: 0.0}}
"""


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def wire_server(scripted: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("wire")
    profile = write_profile(folder / "wire.yaml", PROFILE.format(url=scripted.url))
    server = start_server(profile, folder / "home")
    yield server
    server.stop()
