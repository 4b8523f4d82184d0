"""The exact response cache: a hash of the canonical request after routing.

Entries live in SQLite (so they survive restarts and are shared by processes) with a
small in-memory LRU in front, so a hit costs no database round trip.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from devloop.config import CacheConfig
from devloop.store import response_cache as rows
from devloop.store.calls import WriteJob
from devloop.store.response_cache import Connection
from devloop.store.writer import DbWriter
from devloop.types import ChatRequest, Completion, CompletionRequest, EmbeddingRequest, Usage

if TYPE_CHECKING:  # numpy loads only when the semantic cache is configured
    from devloop.semantic_cache import SemanticCache

# Fields that change how a response is delivered, not what it says.
DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "model"})


def cache_key(
    namespace: str,
    endpoint: str,
    tier: str,
    model: str,
    req: ChatRequest | CompletionRequest | EmbeddingRequest,
    max_tokens: int | None,
) -> str:
    """Every field that shapes the answer, content untouched (never lower-cased or trimmed)."""
    body = req.model_dump(exclude_none=True, exclude=DELIVERY_FIELDS)
    native = getattr(req, "native", None)
    if native:  # excluded from dumps (never forwarded as is) but shapes the answer
        body["native"] = {k: v for k, v in native.items() if k != "keep_alive"}
    body.pop("max_completion_tokens", None)
    body["max_tokens"] = max_tokens
    canonical = orjson.dumps(
        {"ns": namespace, "endpoint": endpoint, "tier": tier, "model": model, "body": body},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(slots=True)
class CachedAnswer:
    completion: Completion
    created: float


def _as_dict(c: Completion) -> dict[str, Any]:
    d: dict[str, Any] = {
        "text": c.text, "model": c.model, "finish_reason": c.finish_reason,
        "tool_calls": c.tool_calls,
        "usage": [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_tokens],
    }
    for name in ("logprobs", "message_extra", "extra", "tier"):
        value = getattr(c, name)
        if value is not None:
            d[name] = value
    if c.choices:
        d["choices"] = [_as_dict(x) for x in c.choices]
    return d


def _from_dict(d: dict[str, Any]) -> Completion:
    p, o, cached = d["usage"]
    return Completion(d["text"], d["model"], d["finish_reason"], Usage(p, o, cached),
                      d.get("tool_calls"), d.get("logprobs"), d.get("message_extra"),
                      d.get("extra"), [_from_dict(x) for x in d["choices"]]
                      if d.get("choices") else None, d.get("tier"))


def encode_completion(c: Completion) -> bytes:
    """Everything the answer carries: text, tool calls, finish reason, logprobs, usage,
    the upstream's extra fields, further choices and the tier that produced it."""
    return orjson.dumps(_as_dict(c))


def decode_completion(raw: bytes | str) -> Completion:
    return _from_dict(orjson.loads(raw))


class ResponseCache:
    def __init__(self, config: CacheConfig, writer: DbWriter, read_conn: Connection,
                 memory_entries: int = 2048) -> None:
        self.config = config
        self.writer = writer
        self.read_conn = read_conn
        self.memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.memory_entries = memory_entries
        self.semantic: SemanticCache | None = None  # set by the gateway when configured

    def eligible(self, temperature: float | None) -> bool:
        if not self.config.enabled:
            return False
        if self.config.cache_all_temperatures:
            return True
        # An unset temperature means the backend default (sampling): not deterministic.
        return temperature is not None and temperature <= self.config.max_temperature

    def get(self, key: str) -> CachedAnswer | None:
        """The live entry for ``key`` (its use is counted in the ledger: a ``hit`` row)."""
        now = time.time()
        entry = self.memory.get(key)
        if entry is None:
            entry = rows.read_entry(self.writer.loop_reader() or self.read_conn, key)
            if entry is None:
                return None
            self._remember(key, entry)
        expires, body = entry
        if expires < now:
            self.memory.pop(key, None)
            return None
        self.memory.move_to_end(key)
        return CachedAnswer(decode_completion(body), expires - self.config.ttl)

    def put(self, key: str, completion: Completion, defer: bool = False
            ) -> WriteJob | None:
        """Remember the answer now; its row is written by the writer thread, or, with
        ``defer``, returned as a job for the caller to commit with its own write."""
        now = time.time()
        body = encode_completion(completion)
        expires = now + self.config.ttl
        self._remember(key, (expires, body))
        if self.semantic is not None:
            self.semantic.put(key, completion)
        job = rows.put_job(key, self.config.namespace, completion.model, body,
                           completion.usage.prompt_tokens, completion.usage.completion_tokens,
                           now, expires)

        if defer:
            return job
        self.writer.submit(job)
        return None

    def _remember(self, key: str, entry: tuple[float, bytes]) -> None:
        self.memory[key] = entry
        self.memory.move_to_end(key)
        while len(self.memory) > self.memory_entries:
            self.memory.popitem(last=False)
