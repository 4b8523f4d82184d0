from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, RunningServer, start_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The embedded tier alone: what a fresh machine with no Ollama and no keys gets.
EMBEDDED_PROFILE = """
name: embedded-only
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:    {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9", fallback: embedded}
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: local}
fallbacks: [local, embedded]
cache: {enabled: true, ttl: 1h, max_temperature: 0.0}
"""


@pytest.fixture(scope="session")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The bundled default profile, as `make run` starts it (no Ollama, no keys)."""
    home = tmp_path_factory.mktemp("default-home")
    server = start_server("default", home)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def embedded_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "embedded-only.yaml"
    path.write_text(EMBEDDED_PROFILE)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
