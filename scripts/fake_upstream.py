"""A fake OpenAI-compatible upstream that sleeps: a stand-in for a busy GPU in timing runs.

It serves at most ``--capacity`` requests at once, first come first served (like a GPU
server's batch limit), and each takes ``--delay`` seconds (times 1 +- ``--jitter``).
``GET /stats`` reports the most requests it ever had in service at once and how many it
served, so a test can check the cap a team devloop puts in front of it.

    python scripts/fake_upstream.py --port 8001 --delay 0.25 --capacity 4
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import orjson
from aiohttp import web

MODEL = "fake-gpu-model"


def make_app(delay: float, capacity: int, jitter: float) -> web.Application:
    stats = {"active": 0, "max_active": 0, "served": 0}
    slots = asyncio.Semaphore(capacity)

    async def work() -> None:
        async with slots:
            stats["active"] += 1
            stats["max_active"] = max(stats["max_active"], stats["active"])
            try:
                await asyncio.sleep(delay * random.uniform(1 - jitter, 1 + jitter))
            finally:
                stats["active"] -= 1
                stats["served"] += 1

    async def answer(request: web.Request, chat: bool) -> web.StreamResponse:
        body: dict[str, Any] = await request.json(loads=orjson.loads)
        await work()
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        rid = f"fake-{time.monotonic_ns()}"
        if not body.get("stream"):
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": "ok ok ok"},
                 "finish_reason": "stop"} if chat else
                {"index": 0, "text": "ok ok ok", "finish_reason": "stop"})
            return web.json_response({"id": rid, "object": "chat.completion", "model": MODEL,
                                      "choices": [choice], "usage": usage}, dumps=_dumps)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in ("ok", " ok", " ok"):
            delta = {"delta": {"content": piece}} if chat else {"text": piece}
            await resp.write(_event({"id": rid, "model": MODEL,
                                     "choices": [{"index": 0, **delta, "finish_reason": None}]}))
        final = {"delta": {}} if chat else {"text": ""}
        await resp.write(_event({"id": rid, "model": MODEL,
                                 "choices": [{"index": 0, **final, "finish_reason": "stop"}]}))
        await resp.write(_event({"id": rid, "model": MODEL, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await answer(request, chat=True)

    async def completions(request: web.Request) -> web.StreamResponse:
        return await answer(request, chat=False)

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", get_stats)
    return app


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--delay", type=float, default=0.25, help="seconds per request")
    parser.add_argument("--capacity", type=int, default=4, help="requests served at once")
    parser.add_argument("--jitter", type=float, default=0.0, help="relative spread of --delay")
    args = parser.parse_args()
    web.run_app(make_app(args.delay, args.capacity, args.jitter), host=args.host,
                port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
