"""A fast OpenAI-compatible upstream for benchmarks: raw asyncio + httptools, loopback only.

It answers POST /v1/chat/completions and /v1/completions (JSON, or SSE when ``stream``),
GET /v1/models and GET /health with canned bodies, so whatever latency a gateway shows in
front of it is the gateway's own. Streams send the first content piece at once and the
rest ``--gap-ms`` apart, so a gateway that buffers a stream shows it in time to first token.

    python scripts/upstream_stub.py --port 9101 [--gap-ms 1] [--pieces 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from typing import Any

import httptools
import orjson

MODEL = "stub-model"
TEXT_PIECES = ["Hello", " from", " the", " stub", " upstream", ".", " Bye", "!"]
COUNTER = itertools.count()


def chat_body(rid: int, model: str) -> bytes:
    return orjson.dumps({
        "id": f"chatcmpl-stub{rid}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the stub."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    })


def completion_body(rid: int, model: str) -> bytes:
    return orjson.dumps({
        "id": f"cmpl-stub{rid}", "object": "text_completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": "Hello from the stub.", "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    })


def sse_events(rid: int, model: str, chat: bool, pieces: int, usage: bool) -> list[bytes]:
    base = {"id": f"chatcmpl-stub{rid}", "created": int(time.time()), "model": model,
            "object": "chat.completion.chunk" if chat else "text_completion"}

    def choice(text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if not chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {} if text is None else {"content": text}
        if role:
            delta["role"] = "assistant"
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = []
    texts = [TEXT_PIECES[i % len(TEXT_PIECES)] for i in range(pieces)]
    for i, text in enumerate(texts):
        events.append({**base, "choices": [choice(text, None, role=chat and i == 0)]})
    events.append({**base, "choices": [choice(None, "stop")]})
    if usage:
        events.append({**base, "choices": [], "usage": {
            "prompt_tokens": 12, "completion_tokens": pieces, "total_tokens": 12 + pieces}})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def head(status: int, ctype: bytes, length: int | None) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"OK")
    size = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\nConnection: keep-alive\r\n\r\n"
            % (status, reason, ctype, size))


class StubProtocol(asyncio.Protocol):
    def __init__(self, gap: float, pieces: int) -> None:
        self.gap, self.pieces = gap, pieces
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.queue: asyncio.Queue[tuple[bytes, bytes, bytes]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.worker = asyncio.get_running_loop().create_task(self.serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.queue.put_nowait((self.parser.get_method(), self.url, b"".join(self.body)))

    async def serve(self) -> None:
        """Answer requests on this connection in order (pipelining-safe)."""
        while True:
            method, url, body = await self.queue.get()
            await self.answer(method, url.split(b"?", 1)[0], body)

    async def answer(self, method: bytes, path: bytes, body: bytes) -> None:
        t = self.transport
        assert t is not None
        if method == b"GET" and path.endswith(b"/models"):
            data = orjson.dumps({"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "stub"}]})
            t.write(head(200, b"application/json", len(data)) + data)
            return
        if method == b"GET" and path == b"/health":
            t.write(head(200, b"application/json", 2) + b"{}")
            return
        chat = path.endswith(b"/chat/completions")
        if method != b"POST" or not (chat or path.endswith(b"/completions")):
            data = b'{"error": {"message": "no such route", "type": "invalid_request_error"}}'
            t.write(head(404, b"application/json", len(data)) + data)
            return
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = b'{"error": {"message": "bad json", "type": "invalid_request_error"}}'
            t.write(head(400, b"application/json", len(data)) + data)
            return
        rid = next(COUNTER)
        model = req.get("model") or MODEL
        if not req.get("stream"):
            data = chat_body(rid, model) if chat else completion_body(rid, model)
            t.write(head(200, b"application/json", len(data)) + data)
            return
        usage = bool((req.get("stream_options") or {}).get("include_usage"))
        events = sse_events(rid, model, chat, self.pieces, usage)
        t.write(head(200, b"text/event-stream", None) + chunk(events[0]))
        for event in events[1:]:
            if self.gap:
                await asyncio.sleep(self.gap)
            t.write(chunk(event))
        t.write(b"0\r\n\r\n")


async def serve(host: str, port: int, gap: float, pieces: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StubProtocol(gap, pieces), host, port,
                                      backlog=1024, reuse_address=True)
    print(f"upstream stub on http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9101)
    ap.add_argument("--gap-ms", type=float, default=1.0, help="pause between stream pieces")
    ap.add_argument("--pieces", type=int, default=4, help="content pieces per stream")
    args = ap.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        raise SystemExit("upstream_stub: loopback addresses only")
    import uvloop

    uvloop.run(serve(args.host, args.port, args.gap_ms / 1000, args.pieces))


if __name__ == "__main__":
    main()
