"""Team-mode fixtures: a team devloop (real server on loopback) and the keys it accepts.

The team server's final upstream is the embedded SmolLM2 tier, priced in the profile so
that calls cost money and per-key budgets bite. The fairness test brings its own slow
upstream (scripts/fake_upstream.py), since it is about timing.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devloop.store.db import open_db
from devloop.store.keys import create_key
from tests.helpers import ROOT, RunningServer, base_env, free_port, start_server, wait_healthy

TEAM_PROFILE = """
name: team-box
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded, default_max_tokens: 16}
cache: {enabled: false}
prices:   # USD per million tokens: $0.001 a token, so a key's budget runs out in a few calls
  smollm2-135m: {input: 1000.0, output: 1000.0}
"""
# Every key the session's team server knows, created before it starts (serve --team
# refuses to start without one). name -> keyword arguments of create_key.
TEAM_KEYS: dict[str, dict[str, Any]] = {
    "alice": {}, "bob": {}, "chain": {}, "metrics": {"admin": True},
    "capped": {"budget_usd": 0.1, "period": "day"},
    "slow-lane": {"rpm": 2},
    **{f"load{i}": {} for i in range(4)},
}
TEAM_ENV = {
    "DEVLOOP_LOG_LEVEL": "debug",        # the most a log says; the key must still never appear
    "DEVLOOP_TEAM_MAX_IN_FLIGHT": "4",   # below the load test's 20 connections: the queue works
}


def devloop_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devloop", *args], cwd=ROOT, env=base_env(home),
                          capture_output=True, text=True, timeout=60)


def add_key(home: Path, name: str, **limits: Any) -> str:
    home.mkdir(parents=True, exist_ok=True)
    db = open_db(home / "devloop.db")
    try:
        return create_key(db, name, **limits)
    finally:
        db.close()


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def team_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("team-home")
    keys = {name: add_key(home, name, **limits) for name, limits in TEAM_KEYS.items()}
    keys["_home"] = str(home)
    return keys


@pytest.fixture(scope="session")
def team(team_keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[RunningServer]:
    profile = tmp_path_factory.mktemp("team-profile") / "team-box.yaml"
    profile.write_text(TEAM_PROFILE)
    server = start_server(profile, Path(team_keys["_home"]), env=TEAM_ENV, args=("--team",))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_upstream_factory() -> Iterator[Any]:
    """Start scripts/fake_upstream.py processes: (delay, capacity) -> base URL with /v1."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(delay: float, capacity: int, jitter: float = 0.0) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", str(port),
             "--delay", str(delay), "--capacity", str(capacity), "--jitter", str(jitter)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_healthy(f"http://127.0.0.1:{port}/stats", proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
