"""`devloop check` / `devloop eval` as subprocesses, run from a TUI worker thread.

A subprocess keeps LLMLingua, litellm and their memory out of the TUI process, and the
running job can be terminated when the TUI quits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from devloop.config import Settings

JOB_TIMEOUT_S = 3600


@dataclass(slots=True)
class JobResult:
    ok: bool
    summary: str
    stdout: str = ""


def _summary(args: list[str], code: int, stdout: str, stderr: str) -> str:
    if code not in (0, 1):  # 2 is a user error: the CLI printed one line saying why
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {code}"
    if args[0] == "check":
        try:
            files = json.loads(stdout)
            stages = files[0]["stages"] if files else {}
            return ", ".join(f"{k} {v.get('status')}" for k, v in stages.items()) or "done"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return "done"
    last = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if code == 1:
        return last[-1] if last else "below threshold"
    return last[-1] if last else "done"


class CliJob:
    def __init__(self, args: list[str], settings: Settings) -> None:
        self.args = args
        self.env = dict(os.environ)
        self.env.update({"DEVLOOP_HOME": str(settings.home), "DEVLOOP_PROFILE": settings.profile})
        self.proc: subprocess.Popen[str] | None = None

    def run(self) -> JobResult:
        cmd = [sys.executable, "-m", "devloop", *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            out, err = self.proc.communicate(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return JobResult(False, f"timed out after {JOB_TIMEOUT_S}s")
        code = self.proc.returncode
        if code < 0:
            return JobResult(False, "stopped")
        # eval exits 1 when below threshold: it ran, and the ladder shows the failure.
        return JobResult(code == 0, _summary(self.args, code, out, err), out)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
