"""Issue 20, Why 1: long work is not silent (a pty sees per-case progress), routine logs and
library warnings go to $DEVLOOP_HOME/devloop.log (the terminal only with --verbose), and
nothing is drawn when stderr is not a terminal."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from devloop.progress import CaseProgress
from tests.helpers import ROOT, base_env

PROFILE = """
name: down-local
production_model: gpt-4o-mini
tiers:
  local: {backend: ollama, model: qwen2.5-coder:1.5b, base_url: "http://127.0.0.1:9", fallback: embedded}
  embedded: {backend: embedded, model: smollm2-135m}
routes: [{tier: local, default_max_tokens: 8}]
fallbacks: [local, embedded]
failure_threshold: 1
"""

EVALSET = """
name: tiny
threshold: 0.5
max_tokens: 8
prompt:
  system: Answer briefly.
  messages: [{role: user, content: "{{q}}"}]
cases:
  - {id: first-case, vars: {q: "Say hi."}, assert: [{type: not-contains, value: zz-never}]}
  - {id: second-case, vars: {q: "Say bye."}, assert: [{type: not-contains, value: zz-never}]}
"""


def _run_on_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """stderr on a pseudo-terminal (as a person sees it), stdout captured."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "devloop", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(120)
    os.close(leader)
    return code, b"".join(chunks).decode(errors="replace"), out


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    (tmp_path / "evalsets").mkdir()
    (tmp_path / "evalsets" / "tiny.yaml").write_text(EVALSET)
    (tmp_path / "p.yaml").write_text(PROFILE)
    env = base_env(tmp_path / "home")
    env["PYTHONPATH"] = str(ROOT)
    env.pop("DEVLOOP_VERBOSE", None)
    return tmp_path, tmp_path / "p.yaml", env


@pytest.mark.slow
def test_check_shows_per_case_progress_and_keeps_logs_off_the_terminal(project) -> None:  # type: ignore[no-untyped-def]
    cwd, profile, env = project
    code, err, out = _run_on_pty(["check", "--stage", "draft", "--no-store", "--profile",
                                  str(profile), "evalsets/tiny.yaml"], env, cwd)
    assert code in (0, 1), err
    assert "check evalsets/tiny.yaml" in err and "2/2" in err  # the bar, per case
    assert "first-case" in err and "second-case" in err
    assert "cooldown" not in err and "Warning" not in err  # routine: in the log file only
    log = (cwd / "home" / "devloop.log").read_text()
    assert "tier local in cooldown" in log
    assert "draft" in out

    env = {**env, "DEVLOOP_HOME": str(cwd / "home2")}  # a fresh cache: the call is made again
    code, err, _ = _run_on_pty(["--verbose", "check", "--stage", "draft", "--no-store",
                                "--profile", str(profile), "evalsets/tiny.yaml"], env, cwd)
    assert "tier local in cooldown" in err  # --verbose shows them


@pytest.mark.slow
def test_check_is_quiet_when_stderr_is_not_a_terminal(project) -> None:  # type: ignore[no-untyped-def]
    cwd, profile, env = project
    done = subprocess.run([sys.executable, "-m", "devloop", "check", "--stage", "draft",
                           "--no-store", "--profile", str(profile), "evalsets/tiny.yaml"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eval_progress_shows_retries_as_they_happen() -> None:
    stream = _Tty()
    bar = CaseProgress(2, "my-set", stream=stream)
    bar.begin()
    bar.note("retry 1/4 in 0.5s: case a: 429 rate limited")
    bar.advance("a", "pass", 0.000056)
    bar.advance("b", "fail", 0.0)
    text = stream.getvalue()
    assert "retry 1/4" in text and "2/2" in text and "$0.000056" in text
    assert "e-05" not in text


def test_progress_is_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    bar = CaseProgress(1, "my-set", stream=stream)
    bar.advance("a", "pass")
    assert stream.getvalue() == "my-set: 1/1 a pass\n"
