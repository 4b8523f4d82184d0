"""The interface every backend implements, and the errors they raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from devloop.config import TierConfig
from devloop.types import ChatRequest, Completion, CompletionRequest, Delta, Embeddings, Health


class BackendError(Exception):
    """An upstream failed. ``retryable`` errors let the router fall back to another tier."""

    def __init__(self, message: str, status: int = 502, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class UpstreamUnavailable(BackendError):
    """Could not connect at all: the fallback may serve, and the cooldown starts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, retryable=True)


class UpstreamTimeout(BackendError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, retryable=True)


class Backend(ABC):
    """One upstream. ``forward_headers`` are per-call headers for an upstream that speaks
    HTTP and books calls (a team devloop): the request id and feature. Backends that have
    no use for them ignore them."""

    kind: str = "base"

    def __init__(self, tier: str, config: TierConfig) -> None:
        self.tier = tier
        self.config = config

    @property
    def default_model(self) -> str:
        return self.config.model

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
