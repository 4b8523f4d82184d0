"""Warming litellm's request path before the first timed call.

litellm imports and builds its HTTP clients on first use (hundreds of milliseconds), which
would otherwise land in the first case's latency. The warm-up sends one request through the
same provider path to a throwaway OpenAI-compatible responder on loopback, so nothing leaves
the machine and nothing is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

_REPLY = json.dumps({
    "id": "warmup", "object": "chat.completion", "created": 0, "model": "warmup",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "-"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}).encode()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(_REPLY)).encode() + b"\r\nConnection: close\r\n\r\n" + _REPLY)
        await writer.drain()
    writer.close()


async def warm_litellm(litellm: Any, model: str) -> None:
    """One call of ``model``'s OpenAI-compatible path against a loopback responder."""
    if not model.startswith(("openai/", "hosted_vllm/")):
        return  # other providers' paths differ; their first call carries the set-up
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with contextlib.suppress(Exception):
            await litellm.acompletion(model=model, messages=[{"role": "user", "content": "-"}],
                                      api_base=f"http://127.0.0.1:{port}/v1",
                                      api_key="warmup", max_tokens=1, timeout=10,
                                      num_retries=0)
    finally:
        server.close()
        await server.wait_closed()
