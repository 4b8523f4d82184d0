"""`devloop` with no arguments, as `make run` starts it: in a real terminal (a pty) it draws the
TUI, serves the endpoint on the profile's port, logs to DEVLOOP_HOME/tui.log instead of the
screen, and `q` stops both with exit status 0."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, base_env, free_port, wait_healthy


def read_available(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


@pytest.mark.slow
def test_devloop_opens_the_tui_and_serves(embedded_profile: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = base_env(home)
    env.update({"DEVLOOP_PORT": str(port), "DEVLOOP_PROFILE": str(embedded_profile),
                "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"})
    main, child = pty.openpty()
    os.set_blocking(main, False)
    proc = subprocess.Popen([sys.executable, "-m", "devloop"], cwd=ROOT, env=env,
                            stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout=60)
        screen = read_available(main, 0.5)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
            "model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200
        screen += read_available(main, 1.5)
        assert b"Dashboard" in screen and b"Live calls" in screen  # the TUI drew itself
        assert b"Traceback" not in screen and b"cooldown" not in screen  # logs go to the file
        os.write(main, b"q")
        assert proc.wait(timeout=20) == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        assert "cooldown" in (home / "tui.log").read_text()  # local (no Ollama) was skipped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(main)
