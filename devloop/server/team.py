"""Team mode: API keys and a fair queue, as one pure ASGI middleware in front of the app.

``create_app`` installs it when ``settings.team``. Every request except ``/health``, ``/`` (and
``/metrics`` from loopback) needs ``Authorization: Bearer KEY``. Keys are checked against
an in-memory copy of the keys table that is re-read at most every ``key_refresh_s``
seconds, so ``devloop keys revoke`` takes effect within that time without a restart and
without a database query per request. The Authorization header is removed from the scope
once checked, so nothing downstream (handlers, error pages, logs) can ever see the key.

Inference calls then wait in a :class:`FairQueue`: at most ``max_in_flight`` requests are
admitted to the upstream at once, and a free slot goes to the waiting key that holds the
fewest slots (round robin among equals), so one developer's burst cannot starve the
others. One slot is kept back from any single key (``reserved_slots``) so that a newcomer
starts at once even while someone else's burst fills the rest.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devloop.config import Budget, Settings
from devloop.gateway.admission import Budgets
from devloop.server.errors import APIError, error_response
from devloop.server.fair_queue import FairQueue, QueueFull
from devloop.store.keys import KeyRing, KeyRow, touch_job
from devloop.types import QueueStats

log = logging.getLogger("devloop.team")

# Calls that reach a model; everything else (model lists, /api/show, ...) skips the queue.
QUEUED_PATHS = frozenset({
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
    "/chat/completions", "/completions", "/embeddings",
    "/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
    "/v1/messages", "/v1/responses", "/responses",
})
# A proxy in front makes every client look local; a forwarded request is never "loopback".
FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})
LAST_USED_EVERY_S = 10.0
AUTH_MESSAGES = {
    "missing": "missing API key: this devloop runs in team mode; send `Authorization: Bearer "
               "KEY` (an admin creates keys with `devloop keys create NAME`)",
    "invalid": "invalid API key",
    "revoked": "this API key was revoked; ask your admin for a new one",
}


@dataclass(frozen=True, slots=True)
class TeamOptions:
    max_in_flight: int = 32
    reserved_slots: int = 1
    max_queued_per_key: int = 256
    key_refresh_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TeamOptions:
        """``settings.team_*`` (environment ``DEVLOOP_TEAM_*``, validated by Settings)."""
        return cls(**{f.name: getattr(settings, f"team_{f.name}") for f in fields(cls)})


def apply_key_limits(budgets: Budgets, keys: list[KeyRow]) -> None:
    """Each key's budget, rpm and concurrency into the gateway's hard-stop machinery (a key's
    own rate limits override the profile's for its scope)."""
    rpm: dict[str, int] = {}
    concurrency: dict[str, int] = {}
    key_budgets: dict[str, Budget] = {}
    for row in keys:
        scope = f"key:{row.name}"
        if row.rpm:
            rpm[scope] = int(row.rpm)
        if row.max_concurrent:
            concurrency[scope] = int(row.max_concurrent)
        if row.budget_usd:
            try:
                key_budgets[row.name] = Budget(scope=scope, usd=row.budget_usd,
                                               period=row.budget_period or "day")  # type: ignore[arg-type]
            except ValidationError as exc:
                log.warning("key %s: ignoring its budget: %s", row.name, exc.errors()[0]["msg"])
    # a new key with a revoked key's name starts with its own spend
    budgets.set_key_limits(rpm, concurrency, key_budgets, {row.name: row.created for row in keys})


# -- the middleware ------------------------------------------------------------------------------
class TeamMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.options = TeamOptions.from_settings(settings)
        self.keys = KeyRing(settings.db_path, self.options.key_refresh_s)
        self.queue = FairQueue(self.options.max_in_flight, self.options.reserved_slots,
                               self.options.max_queued_per_key)
        self._limits_version = -1
        self._last_used: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none are served; never let one past unchecked
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in ("/health", "/"):  # liveness probes
            await self.app(scope, receive, send)
            return
        gw = scope["app"].state.gateway
        self._sync(gw)
        path: str = scope["path"]
        if path == "/metrics" and from_loopback(scope):
            self._export(gw)
            await self.app(scope, receive, send)
            return
        presented = bearer_token(scope)
        name, reason = self.keys.verify(presented) if presented is not None else (None, "missing")
        if name is None:
            gw.metrics.inc("devloop_auth_failures_total", reason=reason)
            client = scope.get("client") or ("?", 0)
            log.info("401 %s %s from %s: %s API key", scope["method"], path, client[0], reason)
            await respond(scope, receive, send, APIError(
                401, AUTH_MESSAGES[reason], "invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer realm="devloop"'}))
            return
        scope["headers"] = [(k, v) for k, v in scope["headers"]
                            if k not in (b"authorization", b"x-api-key")]
        scope["devloop.key"] = {"name": name}
        self._touch(gw, name)
        if path == "/metrics":
            self._export(gw)
        if scope["method"] != "POST" or path not in QUEUED_PATHS:
            await self.app(scope, receive, send)
            return
        await self._queued(gw, name, scope, receive, send)

    async def _queued(self, gw: Any, name: str, scope: Scope, receive: Receive, send: Send
                      ) -> None:
        try:
            # Read the body first: a slow upload must not hold an upstream slot, and a
            # client that leaves while queued is noticed by waiting on receive().
            body = await read_body(scope, receive, self.settings.max_body_bytes)
        except APIError as err:
            await respond(scope, receive, send, err)
            return
        if body is None:
            return  # the client left before sending its request
        cap = gw.budgets.concurrency_limit(f"key:{name}")
        if cap and self.queue.holding(name) >= cap:
            gw.metrics.inc("devloop_queue_rejected_total", key=name, reason="max_concurrent")
            await respond(scope, receive, send, APIError(
                429, f"rate limit key:{name}: {cap} concurrent requests", "rate_limit_exceeded",
                headers={"Retry-After": "1"}))
            return
        try:
            ticket = self.queue.enter(name)
        except QueueFull as exc:
            gw.metrics.inc("devloop_queue_rejected_total", key=name, reason="queue_full")
            await respond(scope, receive, send, APIError(
                429, str(exc), "rate_limit_exceeded", headers={"Retry-After": "1"}))
            return
        try:
            if ticket.future is not None:
                gw.metrics.inc("devloop_queued_requests_total", key=name)
                if not await wait_or_disconnect(ticket.future, receive):
                    # The client gave up while queued: nothing reached the upstream.
                    gw.metrics.inc("devloop_queue_abandoned_total", key=name)
                    return
            gw.metrics.observe("devloop_queue_wait_seconds", ticket.wait_ms / 1000, key=name)
            scope["devloop.queue"] = QueueStats(ticket.position, round(ticket.wait_ms, 3))
            await self.app(scope, replay(body, receive), send)
        finally:
            self.queue.release(ticket)

    def _sync(self, gw: Any) -> None:
        """Re-read the keys (rate-limited) and load their limits into the gateway's budgets."""
        self.keys.refresh()
        if self._limits_version == self.keys.version:
            return
        apply_key_limits(gw.budgets, self.keys.active())
        self._limits_version = self.keys.version

    def _touch(self, gw: Any, name: str) -> None:
        now = time.time()
        if now - self._last_used.get(name, 0.0) < LAST_USED_EVERY_S:
            return
        self._last_used[name] = now

        gw.writer.submit(touch_job(name, now))

    def _export(self, gw: Any) -> None:
        m = gw.metrics
        m.set("devloop_upstream_slots", self.queue.capacity)
        m.set("devloop_upstream_slots_in_use", self.queue.in_use)
        active = self.keys.active()
        m.set("devloop_team_keys_active", len(active))
        for row in active:
            m.set("devloop_queue_depth", self.queue.queued(row.name), key=row.name)


# -- ASGI helpers --------------------------------------------------------------------------------
def bearer_token(scope: Scope) -> str | None:
    """``Authorization: Bearer KEY``, or Anthropic's ``x-api-key: KEY`` (Claude Code)."""
    api_key = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
        if key == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return api_key


def from_loopback(scope: Scope) -> bool:
    if any(k in FORWARDING_HEADERS for k, _ in scope["headers"]):
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        addr = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool((mapped or addr).is_loopback)


async def respond(scope: Scope, receive: Receive, send: Send, err: APIError) -> None:
    await error_response(Request(scope), err)(scope, receive, send)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body (None when the client disconnected), refusing more than ``limit``."""
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > limit:
            raise APIError(413, f"request body is {int(value)} bytes; the limit is {limit}",
                           "request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the limit of {limit} bytes",
                           "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def wait_or_disconnect(granted: asyncio.Future[None], receive: Receive) -> bool:
    """Wait for the slot; False when the client disconnected first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({granted, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    return granted.done() and not granted.cancelled()


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app the buffered body, then the client's own messages."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
