"""LiveStream, driven as uvicorn drives it: the body runs in the request's task, a client that
leaves cancels it (and only that cancellation is swallowed), and the body's own cleanup runs
however the response ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devloop.server.streaming import LiveStream

SCOPE: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}


class Client:
    """``receive`` says the client left once ``leave`` is set; ``send`` records messages and,
    from the ``block_at``-th one on, waits as uvicorn's does on a full socket buffer."""

    def __init__(self, block_at: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()
        self.block_at = block_at

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if self.block_at is not None and len(self.sent) >= self.block_at:
            await asyncio.Event().wait()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def pieces(log: list[str], n: int, pause: asyncio.Event | None = None
           ) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            for i in range(n):
                if pause is not None and i == 1:
                    await pause.wait()  # the upstream's next piece is slow to come
                yield f"p{i};".encode()
            log.append("done")
        except BaseException as exc:
            log.append(type(exc).__name__)
            raise
        finally:
            log.append("closed")
    return gen()


async def first_piece_sent(log: list[str], client: Client, pause: asyncio.Event | None = None
                           ) -> asyncio.Task[None]:
    """A LiveStream of three pieces being served, once its first piece has been sent."""
    serving = asyncio.create_task(LiveStream(pieces(log, 3, pause), "text/event-stream")(
        SCOPE, client.receive, client.send))
    while len(client.sent) < 2:
        await asyncio.sleep(0)
    return serving


async def test_streams_every_piece_then_ends() -> None:
    log: list[str] = []
    client = Client()
    await LiveStream(pieces(log, 3), "text/event-stream")(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start" and client.sent[0]["status"] == 200
    assert client.body() == b"p0;p1;p2;"
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert log == ["done", "closed"]


async def test_a_client_leaving_mid_body_cancels_the_body_only() -> None:
    log: list[str] = []
    client = Client()
    serving = await first_piece_sent(log, client, asyncio.Event())  # piece 2 is slow
    client.leave.set()
    await serving  # returns: the cancellation it caused is its own
    assert not serving.cancelled()
    assert log == ["CancelledError", "closed"]
    assert client.body() == b"p0;"


async def test_a_client_leaving_during_a_blocked_send_still_closes_the_body() -> None:
    log: list[str] = []
    client = Client(block_at=2)  # the first piece's send never completes
    serving = await first_piece_sent(log, client)
    client.leave.set()
    await serving
    assert log == ["GeneratorExit", "closed"]  # its cleanup ran now, not at garbage collection


async def test_a_cancellation_from_outside_is_passed_on() -> None:
    log: list[str] = []
    client = Client()
    serving = await first_piece_sent(log, client, asyncio.Event())  # piece 2 is slow
    serving.cancel()  # server shutdown, not the client
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert log == ["CancelledError", "closed"]
