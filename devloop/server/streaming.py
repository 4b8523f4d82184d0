"""A streamed response that runs in the request's own task.

Starlette's ``StreamingResponse``, for servers that speak ASGI 2.3 (uvicorn does), moves the
body into a second task inside an anyio task group and listens for the client leaving in
the first: every stream pays a task group, a task, and one more turn of the event loop
before its first byte. ``LiveStream`` writes the body from the request's task and gives only
the listening to a plain asyncio task, which cancels the body when the client goes away, so
the upstream call stops at once and the ledger row says 499 (uvicorn's ``send`` to a closed
connection returns quietly: without the listener the upstream would run to its end).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class LiveStream(Response):
    """``content``: the body's pieces (bytes, or text sent as UTF-8), each sent as it comes;
    status 200. The body is closed (``aclose``) however the response ends."""

    def __init__(self, content: AsyncIterable[bytes | str], media_type: str,
                 headers: Mapping[str, str] | None = None) -> None:
        self.body_iterator = content
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        streaming = True
        left = False

        async def listen() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            # This runs only while the body's task waits; if that wait is inside the body,
            # the cancellation lands there. After the last piece there is nothing to stop.
            if streaming:
                left = True
                task.cancel()

        listener = asyncio.get_running_loop().create_task(listen())
        body = aiter(self.body_iterator)
        try:
            # The body starts before anything is sent, so a client that leaves while a send
            # waits (a full socket buffer) ends a body that has begun: closing it below runs
            # its own cleanup (release, the 499 row). A body never begun would skip that.
            chunk = await anext(body, None)
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            while chunk is not None:
                await send({"type": "http.response.body", "more_body": True,
                            "body": chunk if isinstance(chunk, bytes) else chunk.encode()})
                chunk = await anext(body, None)
            streaming = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left or task.uncancel() > 0:  # cancelled from outside too: pass it on
                raise
        finally:
            listener.cancel()  # before it next runs: it cannot cancel the body's cleanup below
            close = getattr(body, "aclose", None)
            if close is not None:  # a body stopped between two pieces: its cleanup runs now
                await close()
