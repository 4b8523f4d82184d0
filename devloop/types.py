"""Wire-independent request and result types shared by the server, router and backends.

The OpenAI request shapes are the canonical internal form; the Ollama API converts
into them at the edge. Unknown fields are kept (``extra="allow"``) so that a backend
speaking the same protocol can forward them untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Endpoint = Literal["chat", "completions", "embeddings", "messages", "responses"]
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
    n: int | None = Field(default=None, ge=1, le=128)
    user: str | None = None
    logprobs: bool | int | None = None  # chat: bool (+ top_logprobs); completions: an int
    # Ollama fields with no OpenAI equivalent (options devloop does not map, think, keep_alive,
    # raw, context, template), kept for an Ollama tier to forward; never sent elsewhere.
    native: dict[str, Any] | None = Field(default=None, exclude=True)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


@dataclass(slots=True)
class NativeCall:
    """A request in its own wire protocol, kept for a same-protocol upstream."""

    protocol: Literal["anthropic", "responses"]
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class ChatRequest(SamplingParams):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    # The client's original body when a protocol face (Anthropic Messages, Responses) made
    # this request: a backend speaking that protocol natively sends it on unchanged.
    _passthrough: NativeCall | None = PrivateAttr(default=None)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def passthrough(self) -> NativeCall | None:
        return self._passthrough

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


TextRequest = ChatRequest | CompletionRequest  # what chat and completions calls carry


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


CacheTTL = Literal["5m", "1h"]


@dataclass(slots=True)
class Usage:
    """Token counts of one call. ``prompt_tokens`` is every input token, including the
    provider-cache reads (``cached_tokens``, also readable as ``cache_read_tokens``) and
    writes (``cache_write_tokens``); ``reasoning_tokens`` is the part of
    ``completion_tokens`` spent thinking. ``cache_write_ttl`` is the writes' TTL ("5m" or
    "1h"; "1h" when any were 1h), ``cache_write_1h_tokens`` the 1h part of a mixed write."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # cache reads, included in prompt_tokens
    # False when the numbers were counted by devloop rather than reported upstream.
    reported: bool = True
    cache_write_tokens: int = 0
    cache_write_ttl: CacheTTL | None = None
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cache_read_tokens(self) -> int:
        return self.cached_tokens

    @cache_read_tokens.setter
    def cache_read_tokens(self, value: int) -> None:
        self.cached_tokens = value

    @property
    def uncached_prompt_tokens(self) -> int:
        return max(self.prompt_tokens - self.cached_tokens - self.cache_write_tokens, 0)

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
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True)
class Completion:
    """A finished generation, from any backend, for chat or completions.

    ``tool_calls`` are in OpenAI's message shape (``id``, ``type``, ``function.name``,
    ``function.arguments`` as a JSON string). ``logprobs`` is the choice's logprobs object as
    the face returns it. ``message_extra`` holds other fields of the upstream's message
    (``refusal``, ``annotations``, ``reasoning_content``); ``extra`` the body's own extra fields
    (``system_fingerprint``, ``service_tier``). ``choices`` holds choices 1..n-1 for ``n > 1``.
    ``tier`` is the tier that produced the answer (set by the gateway; kept by the cache).
    """

    text: str
    model: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: Any = None
    message_extra: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    choices: list[Completion] | None = None
    tier: str | None = None
    raw: Any = None  # the upstream's own response body, for a same-protocol face


@dataclass(slots=True)
class Delta:
    """One streamed piece. The last one carries ``finish_reason`` and, when known, usage.

    ``tool_calls`` are OpenAI streamed pieces: each carries ``index`` (which call it belongs
    to); the first piece of a call carries ``id``, ``type`` and ``function.name``, later ones
    more ``function.arguments`` text. ``logprobs`` is the chunk's logprobs object
    (``{"content": [...]}``), ``extra`` other delta fields (``refusal``, ``reasoning_content``),
    ``chunk_extra`` the chunk's own extra fields (``system_fingerprint``).
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: Any = None
    extra: dict[str, Any] | None = None
    chunk_extra: dict[str, Any] | None = None
    raw: bytes | None = None  # the upstream's own stream event(s), for a same-protocol face


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


@dataclass(slots=True, frozen=True)
class Capabilities:
    """What a tier's backend can honour. The router routes on these; the faces report them."""

    tools: bool = True
    parallel_tool_calls: bool = True
    vision: bool = False
    json_object: bool = True
    json_schema: bool = True
    fim: bool = False
    logprobs: bool = False
    max_n: int = 1
    context_length: int | None = None
    embeddings: bool = True
    # Ollama fields (think, keep_alive, raw, context, template, options.*) forwarded as they are.
    ollama_native: bool = False
    # OpenAI fields devloop does not know are forwarded as they are (same protocol upstream).
    passthrough: bool = False
    echo: bool = False
    # Ollama `options` this backend honours (beyond those devloop maps to OpenAI fields).
    options: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {"tools": self.tools, "parallel_tool_calls": self.parallel_tool_calls,
                "vision": self.vision, "json_object": self.json_object,
                "json_schema": self.json_schema, "fim": self.fim, "logprobs": self.logprobs,
                "n": self.max_n, "context_length": self.context_length,
                "embeddings": self.embeddings}


@dataclass(slots=True)
class RouteDecision:
    """Where a request goes and why. ``reason`` is shown to users in a header."""

    tier: str
    model: str
    reason: str
    fallback_chain: list[str] = field(default_factory=list)
    max_tokens_cap: int | None = None
    default_max_tokens: int | None = None
    # Fallbacks left out because they cannot honour a field (said when nothing else answers).
    skipped: str = ""
    # Optional fields no allowed tier can honour, served without (``X-Devloop-Ignored``):
    # only ``tools`` with tool_choice auto, where a text answer is a valid reply.
    ignored: list[str] = field(default_factory=list)
    # Fallback tiers that get the request without those optional fields, should they serve.
    text_only: list[str] = field(default_factory=list)
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
    protocol: Literal["openai", "ollama", "anthropic", "responses"]
    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    forced_tier: str | None = None
    cache_mode: Literal["default", "bypass", "refresh"] = "default"
    queue: QueueStats | None = None  # team mode: the fair queue's position and wait
    # who sent it: "client", or devloop's own traffic ("check", "eval", "judge", "probe",
    # "ladder"), booked as its own kind and never counted as saved
    origin: str = "client"
    session: str | None = None  # the agent session (devloop.sessions)
    # interactive (default) or background: batch lines, eval drafts, judge replays yield to
    # interactive calls on the local and shared tiers (devloop/gateway/priority.py)
    priority: Literal["interactive", "background"] = "interactive"
