"""Pieces both protocol modules share: reading bodies safely, request context, headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from devloop.backends import BackendError, CredentialError
from devloop.gateway import BudgetExceeded, CallResult, Gateway, StreamCall
from devloop.routing.capabilities import CapabilityError
from devloop.routing.policy import InvalidTier, ModelNotFound
from devloop.security import forbidden_field
from devloop.server.errors import APIError, error_response, from_validation
from devloop.sessions import session_from
from devloop.types import Delta, Endpoint, RequestContext

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
CACHE_MODES = {"bypass", "refresh"}
# Where coding agents put their session id: Claude Code, Codex, then any client.


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def read_json(request: Request) -> Any:
    """The body as JSON, refusing oversize bodies before reading them whole."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is {declared} bytes; the limit is {limit}",
                       "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the limit of {limit} bytes",
                           "request_too_large")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise APIError(400, "request body is empty; send a JSON object", "invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", "invalid_json")
    bad = forbidden_field(data)
    if bad is not None:
        raise APIError(400, f"{bad}: not accepted from a client; devloop takes upstream "
                       f"addresses, keys and provider settings from its profile only",
                       "forbidden_field", bad)
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise from_validation(err) from None
    except ValueError as err:  # raised by our own validators
        raise APIError(400, str(err), "invalid_value") from None


def context(request: Request, endpoint: Endpoint, protocol: str) -> RequestContext:
    # One pass over the raw headers (names are lower-case in ASGI; the first of a repeated
    # header wins, as in Starlette's Headers) instead of a scan for each of a dozen names.
    h = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(request.scope["headers"])}
    cache = (h.get("x-devloop-cache") or "").lower()
    if cache and cache not in CACHE_MODES:
        raise APIError(400, "X-Devloop-Cache must be bypass or refresh", "invalid_header",
                       "X-Devloop-Cache")
    auth = request.scope.get("devloop.key")  # set by team auth
    priority = (h.get("x-devloop-priority") or "interactive").lower()
    if priority not in ("interactive", "background"):
        raise APIError(400, "X-Devloop-Priority must be interactive or background",
                       "invalid_header", "X-Devloop-Priority")
    return RequestContext(
        request_id=h.get("x-request-id") or uuid.uuid4().hex,
        endpoint=endpoint,
        protocol=protocol,  # type: ignore[arg-type]
        feature=h.get("x-devloop-feature") or None,
        user=auth["name"] if auth else h.get("x-devloop-user") or None,
        key_id=auth["name"] if auth else None,
        forced_tier=h.get("x-devloop-tier") or None,
        cache_mode=cache or "default",  # type: ignore[arg-type]
        queue=request.scope.get("devloop.queue"),  # QueueStats, set by team mode's queue
        session=session_from(h),
        priority=priority,  # type: ignore[arg-type]
    )


def check_dimensions(dimensions: int | None, vectors: list[list[float]], tier: str) -> None:
    """`dimensions` is honoured when the tier's model gives vectors of that size; devloop does
    not cut vectors down (only Matryoshka-trained models keep their meaning when cut)."""
    if dimensions is not None and vectors and len(vectors[0]) != dimensions:
        raise APIError(400, f"dimensions: tier {tier}'s embedding model gives "
                       f"{len(vectors[0])}-dimensional vectors and cannot give {dimensions}",
                       "unsupported_parameter", "dimensions")


def result_headers(result: CallResult) -> dict[str, str]:
    headers = {
        "X-Request-Id": result.request_id,
        "X-Devloop-Tier": result.tier,
        "X-Devloop-Model": result.model,
        "X-Devloop-Cache": header_cache(result.cache),
        "X-Devloop-Route-Reason": _header_safe(result.reason),
        "X-Devloop-Overhead-Ms": f"{result.overhead_ms:.2f}",
    }
    if result.saved_usd is not None:
        headers["X-Devloop-Saved-USD"] = f"{result.saved_usd:.8f}"
    if result.decision.ignored:
        headers["X-Devloop-Ignored"] = ", ".join(result.decision.ignored)
    return headers


def stream_headers(call: StreamCall) -> dict[str, str]:
    headers = {
        "X-Request-Id": call.request_id, "X-Devloop-Tier": call.tier,
        "X-Devloop-Model": call.model, "X-Devloop-Cache": header_cache(call.cache),
        "X-Devloop-Route-Reason": _header_safe(call.reason),
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    }
    # Known up front only for a replay from the cache; a live stream's saving is in the ledger.
    if call.result is not None and call.result.saved_usd is not None:
        headers["X-Devloop-Saved-USD"] = f"{call.result.saved_usd:.8f}"
    if call.prep.decision.ignored:
        headers["X-Devloop-Ignored"] = ", ".join(call.prep.decision.ignored)
    return headers


def header_cache(status: str) -> str:
    """The contract's hit|miss|bypass: an uncacheable request (e.g. sampled) is a bypass."""
    return "bypass" if status == "off" else status


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:1000].replace("\n", " ")


def translate(exc: Exception) -> APIError:
    """Core exceptions -> HTTP errors with the contract's codes."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ModelNotFound):
        return APIError(404, str(exc), "model_not_found", "model")
    if isinstance(exc, InvalidTier):
        return APIError(400, str(exc), "invalid_tier", "X-Devloop-Tier")
    if isinstance(exc, BudgetExceeded):
        return APIError(429, str(exc), exc.code, None, {"Retry-After": str(exc.retry_after)},
                        "rate_limit_error" if exc.code == "rate_limit_exceeded" else
                        "budget_exceeded")
    if isinstance(exc, CapabilityError):
        return APIError(400, str(exc), exc.code, exc.param)
    if isinstance(exc, CredentialError):  # 401 as LiteLLM proxy answers it: never retried
        return APIError(401, str(exc), exc.code, type_="authentication_error")
    if isinstance(exc, BackendError):
        if exc.code == "context_length_exceeded":
            message = str(exc) if exc.tier is None or str(exc).startswith(exc.tier) else (
                f"{exc.tier}: {exc}")
            return APIError(400, f"context_length_exceeded: {message}",
                            "context_length_exceeded", "messages")
        if 400 <= exc.status < 500:
            return APIError(exc.status, str(exc), "upstream_rejected")
        return APIError(exc.status if exc.status in (502, 503, 504) else 502, str(exc),
                        "upstream_error", type_="upstream_error")
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    if isinstance(exc, ValueError):
        return APIError(400, str(exc), "invalid_value")
    raise exc


class EventStream(Protocol):
    """A face's writer of one answer as its SSE events (anthropic_stream, responses_stream)."""

    def start(self) -> bytes: ...

    def delta(self, d: Delta) -> bytes: ...

    def finish(self, d: Delta) -> bytes: ...

    def failed(self, err: APIError) -> bytes: ...


async def relay(call: StreamCall, native: bool, events: EventStream) -> AsyncIterator[bytes]:
    """A stream as ``events``; a native upstream's own events (``delta.raw``) pass unchanged
    and nothing is added to them. A failure ends the stream with the face's error event."""
    try:
        if not native:
            yield events.start()
        async for delta in call.deltas():
            if delta.raw is not None:
                yield delta.raw
            elif native:
                continue
            elif delta.finish_reason is None:
                chunk = events.delta(delta)
                if chunk:
                    yield chunk
            else:
                yield events.finish(delta)
    except Exception as exc:  # noqa: BLE001 - a stream that fails ends with an error event
        yield events.failed(translate(exc))


def endpoint(handler: Handler) -> Handler:
    """Turn every known failure into the documented error shape; never a 500 for input."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know
            err = translate(exc)
            return error_response(request, err)

    wrapped.__name__ = handler.__name__
    return wrapped
