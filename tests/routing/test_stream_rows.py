"""A live stream's ledger row: where it and the rows around it are committed, and that a
client leaving mid-stream stops the upstream call and is booked as 499.

While any stream is open the writer commits beside the loop (its thread), so a commit never
holds back a stream's first token or its [DONE]. A stream counts as open from the moment it is
admitted (before its first piece) until its own row is committed, on every way it can end."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from devloop.backends import BackendError
from devloop.config import Profile, Settings
from devloop.gateway import Gateway
from devloop.types import ChatRequest, RequestContext
from tests.helpers import start_server, write_profile
from tests.routing.stub_upstream import StubUpstream

T = TypeVar("T")


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as s:
        yield s


@pytest.fixture
async def gw(tmp_path: Path, stub: StubUpstream) -> AsyncIterator[Gateway]:
    # a budget with a price: every stream holds a reservation until its row settles it
    profile = Profile.model_validate({
        "name": "stream-rows", "production_model": "anthropic/claude-sonnet-4-5",
        "tiers": {"shared": {"backend": "openai", "base_url": stub.base_url,
                             "model": "stub-model", "timeout": 10}},
        "routes": [{"tier": "shared"}], "fallbacks": [], "cache": {"enabled": False},
        "budgets": [{"scope": "global", "usd": 100, "period": "day"}],
        "prices": {"stub-model": {"input": 1.0, "output": 2.0}}})
    gateway = Gateway(Settings(home=tmp_path / "home"), profile)
    await gateway.start(probe=False)
    yield gateway
    await gateway.close()


def held(gw: Gateway) -> list[tuple[int]]:
    """Reservations still holding budget (the writer's queue drained first)."""
    gw.writer.submit(committer).result(10)
    with sqlite3.connect(gw.settings.db_path) as conn:
        return conn.execute("SELECT settled FROM reservations WHERE settled = 0").fetchall()


def committer(conn: sqlite3.Connection) -> str:
    """A writer job that says which thread committed it."""
    return threading.current_thread().name


def streaming() -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "stream": True, "max_tokens": 3,
                                       "messages": [{"role": "user", "content": "Hello"}]})


def ctx() -> RequestContext:
    return RequestContext(uuid.uuid4().hex, "chat", "openai")


def within(seconds: float, check: Callable[[], T]) -> T:
    """``check()``'s first truthy value within ``seconds`` (else its last value)."""
    end = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < end:
        time.sleep(0.05)
    return value


async def until_upstream_has(stub: StubUpstream, n: int) -> None:
    for _ in range(1000):
        if stub.state.chat_requests >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never reached the upstream")


async def test_a_stream_is_open_from_admission_until_its_row_is_committed(
        gw: Gateway, stub: StubUpstream) -> None:
    loop_thread = threading.current_thread().name
    assert await gw.writer.run(committer) == loop_thread  # nothing open: on the loop
    stub.state.delay = 0.5  # the upstream holds back the first piece
    opening = asyncio.create_task(gw.stream(streaming(), ctx()))
    await until_upstream_has(stub, 1)
    # admitted, no piece yet: a row committed now goes beside the loop
    assert await gw.writer.run(committer) == "devloop-db-writer"
    call = await opening
    pieces = [d async for d in call.deltas()]
    assert "".join(d.text for d in pieces) == "w0 w1 w2 "
    assert call.result is not None and call.result.completion is not None
    # its own row is committed: nothing is open any more
    assert await gw.writer.run(committer) == loop_thread
    with sqlite3.connect(gw.settings.db_path) as conn:
        assert conn.execute("SELECT stream, status FROM calls").fetchall() == [(1, 200)]
    assert held(gw) == []


async def test_a_stream_that_fails_before_its_first_piece_is_closed(
        gw: Gateway, stub: StubUpstream) -> None:
    stub.state.mode, stub.state.status = "error", 400
    with pytest.raises(BackendError):
        await gw.stream(streaming(), ctx())
    assert gw.writer.open_streams == 0 and gw.in_flight == 0
    assert held(gw) == []
    with sqlite3.connect(gw.settings.db_path) as conn:
        assert [s for (s,) in conn.execute("SELECT status FROM calls")] == [400]


async def test_a_stream_cancelled_before_its_first_piece_is_closed(
        gw: Gateway, stub: StubUpstream) -> None:
    stub.state.delay = 2.0
    opening = asyncio.create_task(gw.stream(streaming(), ctx()))
    await until_upstream_has(stub, 1)
    opening.cancel()  # the client left while the upstream was still thinking
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert gw.writer.open_streams == 0 and gw.in_flight == 0
    assert held(gw) == []  # its reservation no longer holds the budget


async def test_a_stream_the_client_leaves_is_closed(gw: Gateway, stub: StubUpstream) -> None:
    call = await gw.stream(streaming(), ctx())
    pieces = call.deltas()
    assert (await anext(pieces)).text == "w0 "
    await pieces.aclose()  # the client went away after the first piece
    assert gw.writer.open_streams == 0 and gw.in_flight == 0
    assert held(gw) == []
    with sqlite3.connect(gw.settings.db_path) as conn:
        assert conn.execute("SELECT status FROM calls").fetchall() == [(499,)]


@pytest.mark.slow
def test_a_client_that_leaves_mid_stream_stops_the_upstream_call(
        tmp_path: Path, stub: StubUpstream) -> None:
    stub.state.pause = 60.0  # the upstream's next piece is a minute away
    profile = write_profile(tmp_path / "p.yaml", f"""
name: leave
production_model: anthropic/claude-sonnet-4-5
tiers:
  shared: {{backend: openai, base_url: "{stub.base_url}", model: stub-model, timeout: 120}}
routes:
  - {{tier: shared}}
fallbacks: []
cache: {{enabled: false}}
""")
    server = start_server(profile, tmp_path / "home")
    try:
        with httpx.stream("POST", server.base_url + "/v1/chat/completions", timeout=30, json={
                "model": "auto", "stream": True, "max_tokens": 3,
                "messages": [{"role": "user", "content": "Hello"}]}) as resp:
            assert resp.status_code == 200
            assert any('"content":"w0 "' in line for line in resp.iter_lines())
        # the client has gone after the first piece: the row is written long before the
        # upstream's next piece would have come
        def rows() -> list[tuple[int, str]]:
            with sqlite3.connect(server.db_path) as conn:
                return conn.execute("SELECT status, error FROM calls").fetchall()

        assert within(10, rows) == [(499, "client disconnected")]
        within(10, lambda: stub.in_flight == 0)  # devloop has closed its upstream connection
        assert stub.in_flight == 0 and stub.state.chat_requests == 1
    finally:
        server.stop()
