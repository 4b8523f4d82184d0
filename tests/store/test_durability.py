"""The ledger under stress: kill -9 mid-traffic loses no answered call; 200 concurrent calls
give 200 rows and no "database is locked"."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers import RunningServer, start_server, write_profile

pytestmark = pytest.mark.slow

PROFILE = """
name: durability
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m}
routes:
  - {tier: embedded}
cache: {enabled: false}
"""


def serve(tmp_path: Path, cache: bool = False) -> RunningServer:
    text = PROFILE.replace("enabled: false", "enabled: true") if cache else PROFILE
    return start_server(write_profile(tmp_path / "d.yaml", text), tmp_path / "home")


def request(i: int) -> dict[str, object]:
    return {"model": "auto", "max_tokens": 3,
            "messages": [{"role": "user", "content": f"Reply with a number: {i}"}]}


def client_loop(base_url: str, stream: bool, done: list[str], stop: threading.Event) -> None:
    """Send requests until stopped; remember the ids of those answered completely."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        i = 0
        while not stop.is_set():
            rid = uuid.uuid4().hex
            i += 1
            try:
                if stream:
                    with http.stream("POST", "/v1/chat/completions", headers={"X-Request-Id": rid},
                                     json={**request(i), "stream": True}) as resp:
                        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
                    finished = (resp.status_code == 200 and lines and lines[-1] == "data: [DONE]"
                                and not any('"error"' in ln for ln in lines)
                                and any('"finish_reason":"' in ln for ln in lines))
                else:
                    resp = http.post("/v1/chat/completions", headers={"X-Request-Id": rid},
                                     json=request(i))
                    finished = (resp.status_code == 200
                                and resp.json()["choices"][0]["finish_reason"] is not None)
            except (httpx.HTTPError, json.JSONDecodeError):
                continue  # the server died under this request: it owes us nothing
            if finished:
                done.append(rid)


def test_kill_9_keeps_every_answered_call(tmp_path: Path) -> None:
    server = serve(tmp_path)
    done: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=client_loop, args=(server.base_url, i % 2 == 0, done, stop))
               for i in range(20)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 120
    while len(done) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)  # mid-traffic: some requests are in flight
    server.proc.wait(10)
    answered = list(done)
    stop.set()
    for t in clients:
        t.join(40)
    assert len(answered) >= 30
    with sqlite3.connect(server.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ledger = {r[0] for r in conn.execute("SELECT request_id FROM calls")}
    missing = [rid for rid in answered if rid not in ledger]
    assert not missing, f"{len(missing)} answered calls missing from the ledger"
    # the database opens and upgrades cleanly after the crash
    restarted = start_server(tmp_path / "d.yaml", tmp_path / "home")
    try:
        assert httpx.post(restarted.base_url + "/v1/chat/completions", json=request(0),
                          timeout=60).status_code == 200
    finally:
        restarted.stop()


@pytest.mark.timeout(900)
def test_200_concurrent_requests_200_rows(tmp_path: Path) -> None:
    """A mix a busy endpoint sees: 150 cache hits (fast, so rows pile up at once) while 50
    real model calls, half of them streamed, are in flight."""
    server = serve(tmp_path, cache=True)
    ids = [uuid.uuid4().hex for _ in range(200)]
    warm = [cached(k) for k in range(3)]
    for body in warm:
        assert httpx.post(server.base_url + "/v1/chat/completions", json=body,
                          timeout=120).status_code == 200

    def body_for(i: int) -> dict[str, object]:
        if i % 4:
            return warm[i % 4 - 1]
        return {**cached(1000 + i), "stream": i % 8 == 0}

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600,
                                     limits=limits) as http:
            return await asyncio.gather(*(
                http.post("/v1/chat/completions", headers={"X-Request-Id": rid}, json=body_for(i))
                for i, rid in enumerate(ids)))

    try:
        responses = asyncio.run(fire())
    finally:
        server.stop()
    assert [r.status_code for r in responses] == [200] * 200
    assert not [r for r in responses if '"error"' in r.text]
    assert sum(r.headers["x-devloop-cache"] == "hit" for r in responses) == 150
    with sqlite3.connect(server.db_path) as conn:
        got = {r[0]: r[1] for r in conn.execute("SELECT request_id, status FROM calls")
               if r[0] in set(ids)}
    assert set(got) == set(ids) and set(got.values()) == {200}
    assert "database is locked" not in server.output()


def cached(i: int) -> dict[str, object]:
    return {**request(i), "temperature": 0.0, "max_tokens": 2}
