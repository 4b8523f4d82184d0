"""Shared pieces of the benchmarks: a lean keep-alive HTTP client, processes, percentiles.

The client is raw asyncio (no aiohttp/httpx) so the load generator, which shares the two
cores with the servers it measures, spends as little CPU per request as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
MAIN_PY = ROOT / ".venv" / "bin" / "python"
BENCH_VENV = ROOT / ".venv-bench"
BENCH_NODE = ROOT / ".bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def pcts(values: Sequence[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.50), "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99), "n": len(values)}


# -- HTTP client ------------------------------------------------------------------------------
@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    total_ms: float
    ttft_ms: float | None = None


class Conn:
    """One keep-alive HTTP/1.1 connection; requests on it run one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, stream: bool = False) -> Reply:
        reused = self.writer is not None
        if not reused:
            await self._open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body or method == "POST":
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        start = time.perf_counter()
        self.writer.write(raw)
        try:
            reply = await self._read(start, stream)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.close()
            idle_closed = isinstance(exc, ConnectionError) or not exc.partial
            if reused and idle_closed:  # the server dropped an idle keep-alive connection
                return await self.request(method, path, body, headers, stream)
            raise
        if reply.headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return reply

    async def _read(self, start: float, stream: bool) -> Reply:
        r = self.reader
        assert r is not None
        head = await r.readuntil(b"\r\n\r\n")
        first, *rest = head[:-4].split(b"\r\n")
        status = int(first.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in rest:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        ttft = None
        if b"content-length" in headers:
            body = await r.readexactly(int(headers[b"content-length"]))
            if stream and status == 200:
                ttft = (time.perf_counter() - start) * 1000  # one piece: first == last
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts: list[bytes] = []
            seen = b""
            while True:
                size_line = await r.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while (await r.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                data = (await r.readexactly(size + 2))[:-2]
                parts.append(data)
                if stream and ttft is None:
                    seen += data
                    if first_token_in(seen):
                        ttft = (time.perf_counter() - start) * 1000
            body = b"".join(parts)
        else:  # read to close
            body = await r.read()
            self.close()
        total = (time.perf_counter() - start) * 1000
        return Reply(status, headers, body, total, ttft)


def first_token_in(buf: bytes) -> bool:
    """True once a complete SSE event carrying non-empty content (or text) has arrived."""
    for event in buf.split(b"\n\n")[:-1]:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return True
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            for choice in data.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content") or choice.get("text"):
                    return True
    return False


# -- processes ----------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float = field(default_factory=time.perf_counter)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Its own process group (start_new_session): litellm and node start children.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def spawn(name: str, cmd: list[str], port: int, logdir: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Proc:
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{name}.log"
    full_env = dict(os.environ)
    full_env.update(env or {})
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                cwd=cwd or ROOT, start_new_session=True)
    return Proc(name, proc, port, log)


async def wait_http(p: Proc, path: str = "/", timeout: float = 120.0,
                    want: int | None = None) -> float:
    """Poll until the server answers ``path`` (any status, or ``want``); seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.output()}")
        conn = Conn("127.0.0.1", p.port)
        try:
            reply = await conn.request("GET", path)
            if want is None or reply.status == want:
                return time.perf_counter() - p.started
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{p.name} did not answer {path} within {timeout}s:\n{p.output()}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total / (1024 * 1024)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def machine_info() -> dict[str, str]:
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
        "kernel": platform.release(), "load_before": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def dumps(obj: object) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()
