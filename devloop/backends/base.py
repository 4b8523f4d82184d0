"""The interface every backend implements, and the errors they raise."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from devloop.config import TierConfig
from devloop.types import (
    Capabilities,
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    Embeddings,
    Health,
)


class BackendError(Exception):
    """An upstream failed. ``retryable`` errors let the router fall back to another tier.

    ``code`` names a known kind (``context_length_exceeded``); ``tier`` is set by the router
    to the tier that failed."""

    def __init__(self, message: str, status: int = 502, retryable: bool = True,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.code = code
        self.tier: str | None = None


class UpstreamUnavailable(BackendError):
    """Could not connect at all: the fallback may serve, and the cooldown starts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, retryable=True)


class UpstreamTimeout(BackendError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, retryable=True)


class CredentialError(BackendError):
    """The provider key is missing from devloop's environment, or the provider refused it.

    Never retried: not by the router (another attempt would not bring a key) and, answered as
    a 401, not by clients (the OpenAI and Anthropic SDKs retry 408, 409, 429 and 5xx only).
    The message names the environment variable, never its value."""

    def __init__(self, tier: str, env: str, refused: bool = False) -> None:
        message = (f"{tier}: the provider refused the API key: check {env} in devloop's "
                   f"environment" if refused else
                   f"{tier}: no provider API key: set {env} in devloop's environment")
        super().__init__(message, status=401, retryable=False,
                         code="invalid_provider_key" if refused else "missing_provider_key")


class Backend(ABC):
    """One upstream. ``forward_headers`` are per-call headers for an upstream that speaks
    HTTP and books calls (a team devloop): the request id and feature. Backends that have
    no use for them ignore them."""

    kind: str = "base"

    def __init__(self, tier: str, config: TierConfig) -> None:
        self.tier = tier
        self.config = config
        self._discovered: Capabilities | None = None  # set by ``discover``
        # (what discovery had found, the capabilities made from it): asked on every request
        self._capabilities_memo: tuple[Capabilities | None, Capabilities] | None = None

    @property
    def default_model(self) -> str:
        return self.config.model

    def default_capabilities(self) -> Capabilities:
        """What this kind of backend can do, before anything is read from the upstream."""
        return Capabilities()

    def capabilities(self) -> Capabilities:
        """Declared capabilities: the backend's (refined by ``discover``), then the profile's
        ``capabilities:`` overrides for the tier."""
        found, memo = self._discovered, self._capabilities_memo
        if memo is not None and memo[0] is found:  # kept until discovery finds something new
            return memo[1]
        caps = found or self.default_capabilities()
        override = self.config.capabilities.model_dump(exclude_none=True)
        if "n" in override:
            override["max_n"] = override.pop("n")
        caps = dataclasses.replace(caps, **override) if override else caps
        self._capabilities_memo = (found, caps)
        return caps

    async def discover(self) -> None:  # noqa: B027 - optional hook
        """Read what the upstream says it can do (context length, vision): GGUF metadata,
        Ollama's /api/show, the server's model card. Best effort; never raises."""

    async def load(self, model: str, unload: bool) -> None:  # noqa: B027 - optional hook
        """Ollama's load / unload request (empty messages, ``keep_alive: 0``)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open clients; must not load models or block (startup stays fast)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and threads."""

    @abstractmethod
    async def chat(self, req: ChatRequest, model: str,
            forward_headers: dict[str, str] | None = None) -> Completion: ...

    @abstractmethod
    def chat_stream(self, req: ChatRequest, model: str,
            forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]: ...

    @abstractmethod
    async def complete(self, req: CompletionRequest, model: str,
            forward_headers: dict[str, str] | None = None) -> Completion: ...

    @abstractmethod
    def complete_stream(self, req: CompletionRequest, model: str,
            forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]: ...

    @abstractmethod
    async def embed(self, texts: list[str], model: str,
            forward_headers: dict[str, str] | None = None) -> Embeddings: ...

    @abstractmethod
    async def health(self) -> Health: ...

    def state_detail(self) -> str | None:
        """What the backend knows of its own state now, without I/O (the embedded model:
        loaded or not), for a display that outlives the last probe; None: only a probe can
        tell."""
        return None


def sampling_kwargs(req: ChatRequest | CompletionRequest, limit: int | None) -> dict[str, object]:
    """OpenAI-style sampling parameters that are set, for backends that take them as kwargs."""
    out: dict[str, object] = {}
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, name)
        if value is not None:
            out[name] = value
    if limit is not None:
        out["max_tokens"] = limit
    stop = req.stop_list()
    if stop:
        out["stop"] = stop
    return out
