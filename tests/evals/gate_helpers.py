"""Running `devloop eval` in process against the recording model, in a chosen DEVLOOP_HOME."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.evals.recording_model import RecordingModel
from tests.helpers import write_profile

PROFILE = """
name: gate-test
production_model: openai/recorded
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: embedded}]
prices:
  openai/recorded: {input: 1.0, output: 2.0}
"""


@dataclass
class Eval:
    model: RecordingModel
    profile: Path

    def __call__(self, home: Path, *args: str, api_base: bool = True,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        from devloop.cli import cli

        argv = ["eval", *args, "--profile", str(self.profile)]
        if api_base:
            argv += ["--api-base", self.model.base_url]
        full_env = {"DEVLOOP_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    **(env or {})}
        runner = CliRunner()
        if cwd is None:
            return runner.invoke(cli, argv, env=full_env, catch_exceptions=False)
        with runner.isolated_filesystem(temp_dir=cwd):
            return runner.invoke(cli, argv, env=full_env, catch_exceptions=False)


@pytest.fixture(scope="module")
def recording_model() -> Iterator[RecordingModel]:
    model = RecordingModel().start()
    yield model
    model.stop()


@pytest.fixture
def run_eval(recording_model: RecordingModel, tmp_path: Path) -> Eval:
    recording_model.seen.clear()
    return Eval(recording_model, write_profile(tmp_path / "profile.yaml", PROFILE))


def evalset(path: Path, cases: str, threshold: float = 1.0, extra: str = "",
            prompt: str = "{{q}}") -> Path:
    path.write_text(f"""
name: {path.stem}
threshold: {threshold}
{extra}
prompt:
  messages:
    - {{role: user, content: "{prompt}"}}
cases:
{cases}
""")
    return path


def report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
