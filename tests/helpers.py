"""Starting real devloop servers (subprocesses on loopback) for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DEVLOOP_HOME": str(home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.home / "devloop.db"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0,
                 log: Path | None = None) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: "
                               f"{log.read_text() if log else ''}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


def start_server(profile: str | Path, home: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), port: int | None = None) -> RunningServer:
    """`python -m devloop serve` on a free loopback port, waiting for /health."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = home / f"server-{port}.log"
    full_env = base_env(home)
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "devloop", "serve", "--port", str(port), "--profile",
           str(profile), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = RunningServer(proc, port, home, log)
    try:
        wait_healthy(server.base_url + "/health", proc, log=log)
    except Exception:
        server.stop(signal.SIGKILL)
        raise
    return server


def write_profile(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
