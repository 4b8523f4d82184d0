"""Fixtures for the TUI: a seeded home, fixed eval sets, UTC, and an app factory."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devloop.config import Settings, load_profile
from devloop.tui.app import DevloopApp
from tests.tui.seed import FIXED_NOW, seed_calls, seed_ladder

DATA = Path(__file__).parent / "data"
SNAPSHOT_PORT = 8790
# The bundled default profile plus budgets (so the gauges show), fixed here for the snapshots.
SNAPSHOT_PROFILE = """
name: snapshot
production_model: anthropic/claude-sonnet-4-5
tiers:
  local:    {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9", fallback: embedded}
  embedded: {backend: embedded, model: smollm2-135m}
  shared:   {backend: openai, base_url: "http://127.0.0.1:9/v1", model: Qwen/Qwen2.5-Coder-7B-Instruct}
  frontier: {backend: litellm, model: anthropic/claude-sonnet-4-5}
routes:
  - {tier: local}
fallbacks: [local, embedded]
budgets:
  - {scope: tier:frontier, usd: 0.50, period: day}
  - {scope: global, usd: 2.00, period: week}
"""


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Call times are shown in local time: pin it so screens are the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding ./evalsets (copies of tests/tui/data), as `devloop` sees it."""
    folder = tmp_path / "project"
    shutil.copytree(DATA, folder / "evalsets")
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def seeded_home(tmp_path: Path, workdir: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    seed_calls(home / "devloop.db", 300, days=14)
    seed_ladder(home / "devloop.db", workdir / "evalsets" / "commit-message.yaml")
    return home


@pytest.fixture
def snapshot_profile(tmp_path: Path) -> Path:
    path = tmp_path / "snapshot.yaml"
    path.write_text(SNAPSHOT_PROFILE)
    return path


@pytest.fixture
def make_app(workdir: Path, snapshot_profile: Path) -> Callable[..., DevloopApp]:
    """A DevloopApp on a home folder; by default fixed and quiet (no endpoint, no timers)."""

    def make(home: Path, profile: str | Path | None = None, **kwargs: Any) -> DevloopApp:
        profile = profile or snapshot_profile
        settings = Settings(home=home, port=kwargs.pop("port", SNAPSHOT_PORT),
                            profile=str(profile))
        options: dict[str, Any] = {"serve": False, "live": False, "auto_check": False,
                                   "evalsets_dir": workdir / "evalsets",
                                   "clock": lambda: FIXED_NOW}
        options.update(kwargs)
        return DevloopApp(settings, load_profile(profile), **options)

    return make
