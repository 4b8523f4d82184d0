"""Wire-independent request and result types shared by the server, router and backends.

The OpenAI request shapes are the canonical internal form; the Ollama API converts
into them at the edge. Unknown fields are kept (``extra="allow"``) so that a backend
speaking the same protocol can forward them untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Endpoint = Literal["chat", "completions", "embeddings"]
TIERS: tuple[str, ...] = ("local", "embedded", "shared", "frontier")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, with multi-part content joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingParams(BaseModel):
    """Parameters common to chat and completions requests."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatRequest(SamplingParams):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def prompt_text(self) -> str:
        return "\n".join(m.text() for m in self.messages)


class CompletionRequest(SamplingParams):
    prompt: str | list[str]
    suffix: str | None = None
    echo: bool = False

    def token_limit(self) -> int | None:
        return self.max_tokens

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else "".join(self.prompt)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            texts = [self.input]
        elif self.input and all(isinstance(x, str) for x in self.input):
            texts = list(self.input)  # type: ignore[arg-type]
        elif not self.input:
            raise ValueError("input: must not be empty")
        else:
            raise ValueError("input: token-id input is not supported; send text")
        if not all(texts):
            raise ValueError("input: must not contain empty strings")
        return texts

    def prompt_text(self) -> str:
        return "\n".join(self.texts())


AnyRequest = ChatRequest | CompletionRequest | EmbeddingRequest


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # False when the numbers were counted by devloop rather than reported upstream.
    reported: bool = True

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass(slots=True)
class Completion:
    """A finished generation, from any backend, for chat or completions."""

    text: str
    model: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Delta:
    """One streamed piece. The last one carries ``finish_reason`` and, when known, usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class Health:
    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    models: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RouteDecision:
    """Where a request goes and why. ``reason`` is shown to users in a header."""

    tier: str
    model: str
    reason: str
    fallback_chain: list[str] = field(default_factory=list)
    max_tokens_cap: int | None = None
    default_max_tokens: int | None = None
    route: str | None = None  # "routes.N" of the route that matched, if one did
    escalate_to: str | None = None  # a cascade route's second tier
    checks: tuple[Any, ...] = ()


@dataclass(slots=True, frozen=True)
class QueueStats:
    """Where a team request waited for an upstream slot (set by server/team.py)."""

    position: int
    wait_ms: float


@dataclass(slots=True)
class RequestContext:
    """Per-call facts from the HTTP edge that routing and the ledger need."""

    request_id: str
    endpoint: Endpoint
    protocol: Literal["openai", "ollama"]
    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    forced_tier: str | None = None
    cache_mode: Literal["default", "bypass", "refresh"] = "default"
    queue: QueueStats | None = None  # team mode: the fair queue's position and wait
