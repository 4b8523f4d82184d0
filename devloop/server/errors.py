"""Error shapes: OpenAI's ``{"error": {...}}`` everywhere, Ollama's ``{"error": "..."}`` on /api."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "upstream_error",
    504: "upstream_error",
}


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None,
                 type_: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = type_ or TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def from_validation(err: ValidationError) -> APIError:
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    msg = first["msg"]
    if first["type"] == "missing":
        msg = f"missing required field {param!r}"
    elif param:
        msg = f"{param}: {msg}"
    return APIError(400, msg, "invalid_value" if first["type"] != "missing" else "missing_field",
                    param)


ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "api_error",
}


def is_ollama_path(path: str) -> bool:
    return path.startswith("/api/")


def is_anthropic_path(path: str) -> bool:
    return path.startswith(("/v1/messages", "/messages"))


def anthropic_body(err: APIError) -> dict[str, Any]:
    """Anthropic's error shape, for /v1/messages."""
    kind = ANTHROPIC_TYPES.get(err.status, "invalid_request_error" if err.status < 500
                               else "api_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def error_response(request: Request | None, err: APIError, extra: dict[str, str] | None = None
                   ) -> Response:
    path = request.url.path if request is not None else ""
    if is_ollama_path(path):
        body: dict[str, Any] = {"error": err.message}
    elif is_anthropic_path(path):
        body = anthropic_body(err)
    else:
        body = err.openai_body()
    headers = {**err.headers, **(extra or {})}
    return Response(orjson.dumps(body), err.status, headers, media_type="application/json")
