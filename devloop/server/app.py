"""The ASGI app factory. The gateway (clients, DB writer, models) lives in the lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from devloop import __version__
from devloop.background import TrustTasks
from devloop.config import Profile, Settings
from devloop.gateway import Gateway
from devloop.gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from devloop.server import anthropic_api, ollama_api, openai_api, responses_api
from devloop.server.errors import APIError, error_response
from devloop.store.batches import has_pending_batches

log = logging.getLogger("devloop.server")


async def health(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    tiers = {
        name: {"backend": cfg.backend, "model": cfg.model, "cooldown": gw.router.is_down(name)}
        for name, cfg in gw.profile.tiers.items()
    }
    body = {"status": "ok", "version": __version__, "profile": gw.profile.name,
            "team": gw.settings.team, "uptime_s": round(time.monotonic() - request.app.state.t0, 3),
            "in_flight": gw.in_flight, "tiers": tiers}
    return Response(orjson.dumps(body), media_type="application/json")


async def root(request: Request) -> Response:
    """Liveness as Ollama answers it (tools probe GET / and HEAD / before anything else)."""
    return Response("Ollama is running", media_type="text/plain; charset=utf-8")


class BrowserCORS(CORSMiddleware):
    """Starlette's CORS for what a browser can send: requests with an ``Origin`` header and
    the cacheable GET/HEAD (which get ``Vary: Origin``). Agents, SDKs and scripts send POSTs
    without an Origin: they go straight to the app, one wrapper fewer on the hot path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not any(
                name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def cors_regex(origins: list[str]) -> str:
    """Glob origins (``http://localhost:*``, ``app://*``) -> one regex for CORSMiddleware."""
    import re

    parts = [re.escape(o).replace(r"\*", "[^/]*") for o in origins]
    return "^(?:" + "|".join(parts) + ")$" if parts else "^$"


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return Response(gw.metrics.render(), media_type=METRICS_CONTENT_TYPE)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = APIError(404, f"no route for {request.method} {request.url.path}", "not_found")
    elif exc.status_code == 405:
        err = APIError(405, f"method {request.method} not allowed on {request.url.path}",
                       "method_not_allowed")
    else:
        err = APIError(exc.status_code, str(exc.detail), None)
    return error_response(request, err, dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: log it with its traceback, answer in the documented shape.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, APIError(500, f"internal error: {type(exc).__name__}",
                                            "internal_error", type_="server_error"))


_gc_tuned = False


def tune_gc() -> None:
    """Collector settings for a server (measured in scripts/bench_gateway.py).

    Everything alive after startup (modules, profile, clients) is frozen out of collection,
    so a full collection no longer walks it (a 25-60 ms stall at 50 requests in flight);
    the first generation is collected every 7,000 net allocations, not 700 (at 50 in flight,
    15% less CPU per request). Request objects are freed by reference counting either way.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 7000), gen1, gen2)


def create_app(settings: Settings, profile: Profile, extra_routes: list[BaseRoute] | None = None,
               probe: bool = True, gateway: Gateway | None = None,
               on_call: Any = None) -> Starlette:
    """Build the app. Pass ``gateway`` to share one with the TUI; else the lifespan makes one.
    ``on_call(record)`` is called for every ledger row (`devloop serve`'s access log)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        gw = gateway or Gateway(settings, profile)
        app.state.gateway = gw
        if on_call is not None:
            gw.listeners.append(on_call)
        if gateway is None:
            await gw.start(probe=probe)
        resume_batches(app)
        tune_gc()
        trust = TrustTasks(gw).start()  # judge sampling worker, alert scheduler
        try:
            yield {}
        finally:
            await trust.stop()
            batches = getattr(app.state, "batch_service", None)
            if batches is not None:
                await batches.close()
            if gateway is None:
                await gw.close()

    routes: list[BaseRoute] = [
        # The faces first: routes are matched in order, and their calls are the hot path.
        *openai_api.routes,
        *ollama_api.routes,
        *anthropic_api.routes,
        *responses_api.routes,
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *(extra_routes or []),
    ]
    for factory in optional_route_factories():
        routes.extend(factory(settings))
    # CORS first (outermost): a browser's preflight is answered before team auth asks for a key.
    middleware = [Middleware(BrowserCORS, allow_origin_regex=cors_regex(settings.cors_origins),
                             allow_methods=["GET", "POST", "HEAD", "OPTIONS", "DELETE"],
                             allow_headers=["*"], expose_headers=["*"], max_age=600)]
    if settings.team:  # keys + fair queue in front of everything (devloop/server/team.py)
        from devloop.server.team import TeamMiddleware

        middleware.append(Middleware(TeamMiddleware, settings=settings))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.settings = settings
    app.state.profile = profile
    app.state.t0 = time.monotonic()
    if gateway is not None:
        app.state.gateway = gateway
    return app


def optional_route_factories() -> list[Any]:
    """Routes from feature modules (the Batch API)."""
    from devloop.server.batches_api import batch_routes

    return [batch_routes]


def resume_batches(app: Starlette) -> None:
    """Batches a previous process left unfinished go on at startup, not at the next request."""
    gw: Gateway = app.state.gateway
    if has_pending_batches(gw.read_conn):
        from devloop.server.batches_api import BatchService

        app.state.batch_service = BatchService(gw, app.state.settings.home / "files")
        app.state.batch_service.resume()
