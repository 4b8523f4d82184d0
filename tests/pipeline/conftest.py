"""Fixtures for the prompt pipeline: small eval sets, a shared converted LLMLingua model,
and a guard that fails any test reaching beyond loopback."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devloop.evals.evalset import load_evalset
from devloop.pipeline.lingua import LinguaCompressor
from devloop.tokens import TiktokenCounter
from tests.helpers import ROOT, base_env

SHIPPED = ROOT / "evalsets"


def style_guide() -> str:
    """The ~2,000-token static style guide of the shipped code-review example (its system
    prompt without the two per-call header lines)."""
    system = load_evalset(SHIPPED / "code-review-summary.yaml").prompt.system or ""
    return system.split("\n\n", 1)[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def block(text: str, indent: int) -> str:
    """``text`` as a YAML block scalar body indented by ``indent`` spaces."""
    pad = " " * indent
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


@pytest.fixture(scope="session")
def tokenizer() -> TiktokenCounter:
    return TiktokenCounter()


@pytest.fixture(scope="session")
def lingua_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DEVLOOP_HOME whose models/ holds the converted SmolLM2 (converted once a session)."""
    return tmp_path_factory.mktemp("lingua-home")


@pytest.fixture(scope="session")
def lingua(lingua_home: Path) -> LinguaCompressor:
    return LinguaCompressor(lingua_home)


@pytest.fixture
def home_with_model(tmp_path: Path, lingua: LinguaCompressor, lingua_home: Path) -> Path:
    """A fresh DEVLOOP_HOME that reuses the session's converted model (symlinked)."""
    lingua._load()  # make sure the conversion has happened
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(lingua_home / "models", target_is_directory=True)
    return home


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail on any connection to a non-loopback address (the compression must be offline)."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                attempts.append(address)
                raise OSError(f"network access to {address} blocked in tests")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts


def cli_env(home: Path) -> dict[str, str]:
    env = base_env(home)
    env.pop("DEVLOOP_PROFILE", None)
    return env


def devloop_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "devloop", *args]


def copy_shipped(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SHIPPED / name, folder / name))
