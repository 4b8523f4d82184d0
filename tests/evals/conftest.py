from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import RunningServer, start_server, write_profile

# The devloop server the evals call: the embedded SmolLM2 tier, reached as openai/embedded.
SERVER_PROFILE = """
name: eval-server
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded}
cache: {enabled: true, ttl: 1h, max_temperature: 0.0}
"""

# The profile `devloop eval` runs with: its production model is the server above, priced so
# that costs and estimates are real numbers (USD per million tokens).
CLIENT_PROFILE = """
name: eval-client
production_model: openai/embedded
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: embedded}]
prices:
  openai/embedded: {input: 1.0, output: 2.0}
"""


@pytest.fixture(scope="session")
def eval_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("eval-server")
    server = start_server(write_profile(root / "server.yaml", SERVER_PROFILE), root / "home")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_profile(tmp_path_factory.mktemp("eval-client") / "client.yaml", CLIENT_PROFILE)


def ledger_rows(server: RunningServer) -> int:
    """Requests the server has answered (one ledger row each, cache hits included)."""
    with sqlite3.connect(server.db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])


@dataclass
class EvalCli:
    home: Path
    profile: Path
    server: RunningServer

    @property
    def api_base(self) -> str:
        return self.server.base_url + "/v1"

    def __call__(self, *args: str, api_base: str | None = None):  # type: ignore[no-untyped-def]
        from devloop.commands.eval import eval_cmd

        env = {"DEVLOOP_HOME": str(self.home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        argv = [*args, "--profile", str(self.profile), "--api-base", api_base or self.api_base]
        return CliRunner().invoke(eval_cmd, argv, env=env, catch_exceptions=False)


@pytest.fixture
def eval_cli(tmp_path: Path, eval_server: RunningServer, client_profile: Path) -> EvalCli:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return EvalCli(tmp_path / "home", client_profile, eval_server)
