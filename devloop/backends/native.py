"""Same-protocol pass-through for the frontier tier: Anthropic Messages and OpenAI Responses.

A ``/v1/messages`` call routed to an ``anthropic/...`` model, or a ``/v1/responses`` call
routed to an ``openai/...`` model (no ``api_base``), goes out as the client sent it: every
block, ``cache_control``, ``thinking``, ``metadata``, tool definitions, and the
``anthropic-version`` / ``anthropic-beta`` headers. Only ``model`` (the tier's) and an output
cap a route imposes are changed. The upstream's answer (body or SSE events) goes back to the
client unchanged; devloop reads the usage from it for the ledger.

litellm's own pass-through (``litellm.anthropic_messages``) was not used: it filters
``anthropic-beta`` down to the betas litellm knows (Claude Code's ``claude-code-20250219``
is dropped), re-sorts them, may inject ``cache_control`` and rewrites message blocks, so
the upstream would not receive what the client sent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from devloop.backends.base import (
    BackendError,
    CredentialError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from devloop.config import TierConfig
from devloop.types import ChatRequest, Completion, Delta, NativeCall, Usage
from devloop.usage import usage_from

ANTHROPIC_URL = "https://api.anthropic.com"
OPENAI_URL = "https://api.openai.com/v1"
STOP_TO_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "stop_sequence": "stop", "refusal": "content_filter", "pause_turn": "stop"}


def speaks(config: TierConfig, model: str, protocol: str) -> bool:
    """Whether this tier and model take ``protocol`` natively (else: translate to chat)."""
    if config.backend != "litellm":
        return False
    if protocol == "anthropic":
        return model.startswith("anthropic/")
    if protocol == "responses":  # openai/<name> + api_base is an OpenAI-compatible chat server
        return model.startswith("openai/") and not (config.api_base or config.base_url)
    return False


def anthropic_usage(u: dict[str, Any]) -> Usage:
    """Anthropic's usage (cache reads, 5m/1h writes) as devloop's ``Usage``."""
    return usage_from(u) or Usage()


def _anthropic_completion(data: dict[str, Any], model: str) -> Completion:
    texts, calls = [], []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input")).decode()}})
    return Completion("".join(texts), data.get("model") or model,
                      STOP_TO_FINISH.get(data.get("stop_reason") or "end_turn", "stop"),
                      anthropic_usage(data.get("usage") or {}), calls or None, raw=data)


def _responses_completion(data: dict[str, Any], model: str) -> Completion:
    texts, calls = [], []
    for item in data.get("output") or []:
        if item.get("type") == "message":
            texts.extend(p.get("text") or "" for p in item.get("content") or []
                         if p.get("type") == "output_text")
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function", "function": {
                "name": item.get("name"), "arguments": item.get("arguments") or ""}})
    finish = "length" if data.get("status") == "incomplete" else (
        "tool_calls" if calls else "stop")
    return Completion("".join(texts), data.get("model") or model, finish,
                      usage_from(data.get("usage")) or Usage(reported=False), calls or None,
                      raw=data)


class NativeUpstream:
    """One tier's same-protocol client (a lazily opened aiohttp session)."""

    def __init__(self, tier: str, config: TierConfig) -> None:
        self.tier, self.config = tier, config
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=self.config.timeout, sock_connect=5))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _key_env(self, protocol: str) -> str:
        return self.config.api_key_env or (
            "ANTHROPIC_API_KEY" if protocol == "anthropic" else "OPENAI_API_KEY")

    def _key(self, protocol: str) -> str:
        key = os.environ.get(self._key_env(protocol))
        if key:
            return key
        if self.config.api_base or self.config.base_url:
            return "devloop-local"  # a local or test upstream takes any key
        raise CredentialError(self.tier, self._key_env(protocol))

    def _target(self, native: NativeCall, model: str, stream: bool
                ) -> tuple[str, dict[str, str], dict[str, Any]]:
        base = (self.config.api_base or self.config.base_url or (
            ANTHROPIC_URL if native.protocol == "anthropic" else OPENAI_URL)).rstrip("/")
        body = dict(native.body)
        body["model"] = model.split("/", 1)[1]
        body["stream"] = stream
        headers = {"content-type": "application/json"}
        if native.protocol == "anthropic":
            url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
            headers.update(native.headers)
            headers["x-api-key"] = self._key("anthropic")
            headers.setdefault("anthropic-version", "2023-06-01")
        else:
            url = base + "/responses"
            headers.update(native.headers)
            headers["authorization"] = f"Bearer {self._key('responses')}"
        return url, headers, body

    @staticmethod
    def _cap(req: ChatRequest, body: dict[str, Any], protocol: str) -> None:
        """A route's output cap (applied to the chat form) holds for the native body too."""
        limit = req.token_limit()
        field = "max_tokens" if protocol == "anthropic" else "max_output_tokens"
        if limit is not None and (body.get(field) is None or body[field] > limit):
            body[field] = limit

    async def _post(self, req: ChatRequest, model: str, stream: bool) -> aiohttp.ClientResponse:
        native = req.passthrough
        assert native is not None
        url, headers, body = self._target(native, model, stream)
        self._cap(req, body, native.protocol)
        try:
            resp = await self.session.post(url, data=orjson.dumps(body), headers=headers)
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamUnavailable(f"{self.tier}: cannot reach {url}: {exc}") from None
        except TimeoutError:
            raise UpstreamTimeout(f"{self.tier}: {url} timed out") from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"{self.tier}: {url}: {exc}") from None
        if resp.status >= 400:
            text = (await resp.text())[:500]
            resp.release()
            if resp.status == 401:  # the provider's text may quote part of the key: not kept
                raise CredentialError(self.tier, self._key_env(native.protocol), refused=True)
            raise BackendError(f"{self.tier}: upstream {resp.status}: {text}",
                               resp.status if resp.status < 500 else 502,
                               resp.status == 429 or resp.status >= 500)
        return resp

    async def call(self, req: ChatRequest, model: str) -> Completion:
        resp = await self._post(req, model, False)
        try:
            data = orjson.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise BackendError(f"{self.tier}: bad upstream response: {exc}") from None
        finally:
            resp.release()
        assert req.passthrough is not None
        if req.passthrough.protocol == "anthropic":
            return _anthropic_completion(data, model)
        return _responses_completion(data, model)

    async def stream(self, req: ChatRequest, model: str) -> AsyncIterator[Delta]:
        """Each upstream SSE event as a Delta carrying its raw bytes; the last one the usage."""
        assert req.passthrough is not None
        anthropic = req.passthrough.protocol == "anthropic"
        resp = await self._post(req, model, True)
        usage: dict[str, Any] = {}
        final: Usage | None = None
        finish, failed = "stop", None
        block: list[bytes] = []
        try:
            async for line in resp.content:
                block.append(line)
                if line.strip():
                    continue
                raw, block = b"".join(block), []
                data = _data(raw)
                if data is None:
                    yield Delta(raw=raw)
                    continue
                kind = data.get("type")
                text = ""
                if anthropic:
                    if kind == "message_start":
                        usage.update((data.get("message") or {}).get("usage") or {})
                    elif kind == "content_block_delta":
                        text = (data.get("delta") or {}).get("text") or ""
                    elif kind == "message_delta":
                        usage.update({k: v for k, v in (data.get("usage") or {}).items()
                                      if v is not None})
                        finish = STOP_TO_FINISH.get(
                            (data.get("delta") or {}).get("stop_reason") or "", finish)
                    elif kind == "error":
                        failed = str((data.get("error") or {}).get("message") or data)[:300]
                else:
                    if kind == "response.output_text.delta":
                        text = data.get("delta") or ""
                    elif kind in ("response.completed", "response.incomplete"):
                        response = data.get("response") or {}
                        final = usage_from(response.get("usage"))
                        finish = "length" if kind == "response.incomplete" else finish
                    elif kind in ("response.failed", "error"):
                        failed = str(data)[:300]
                yield Delta(text=text, raw=raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"{self.tier}: stream broke: {exc}") from None
        finally:
            resp.release()
        if block and b"".join(block).strip():
            yield Delta(raw=b"".join(block))
        if failed:
            raise BackendError(f"{self.tier}: upstream stream error: {failed}", 502, False)
        if anthropic and usage:
            final = anthropic_usage(usage)
        yield Delta(finish_reason=finish, usage=final)


def _data(raw: bytes) -> dict[str, Any] | None:
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            try:
                value = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None
