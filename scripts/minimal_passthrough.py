"""The floor for a Python gateway: Starlette + aiohttp, no features, same server stack as devloop.

    python scripts/minimal_passthrough.py --port 9102 --upstream http://127.0.0.1:9101/v1
"""

import argparse

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def create_app(upstream: str) -> Starlette:
    session: aiohttp.ClientSession | None = None

    async def forward(request: Request) -> Response:
        nonlocal session
        session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        resp = await session.post(upstream + request.url.path.removeprefix("/v1"),
                                  data=await request.body(),
                                  headers={"Content-Type": "application/json"})
        if resp.content_type != "text/event-stream":
            body = await resp.read()
            resp.release()
            return Response(body, resp.status, media_type=resp.content_type)

        async def pieces():  # type: ignore[no-untyped-def]
            async for piece in resp.content.iter_any():
                yield piece
            resp.release()

        return StreamingResponse(pieces(), resp.status, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/{rest:path}", forward, methods=["POST"])])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9102)
    ap.add_argument("--upstream", default="http://127.0.0.1:9101/v1")
    args = ap.parse_args()
    uvicorn.run(create_app(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", log_level="warning", access_log=False)
