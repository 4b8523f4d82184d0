"""The optional semantic cache (``cache: {semantic: true}``; off by default).

A request that misses the exact cache is embedded (by the ``embed`` callable the gateway
passes: the local tier, else the embedded one) and compared, by cosine similarity, with
earlier answered requests that had every other parameter equal (model, temperature,
max_tokens, ...: the "bucket"). At or above ``semantic_threshold`` (0.95) the earlier
answer is served. Requests that contain code are
never served this way unless ``semantic_include_code`` is set: two snippets that read alike
can need different answers. Entries live in memory only, bounded, with the exact cache's TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import orjson

from devloop.config import CacheConfig
from devloop.prompt_signals import has_code
from devloop.types import ChatRequest, Completion, CompletionRequest

# text -> its embedding, or None when no tier can embed right now
Embed = Callable[[str], Awaitable[list[float] | None]]
CONTENT_FIELDS = frozenset({"messages", "prompt", "suffix", "stream", "stream_options", "user",
                            "model", "max_completion_tokens"})


@dataclass(slots=True)
class SemanticHit:
    completion: Completion
    created: float
    similarity: float


def bucket_key(endpoint: str, tier: str, model: str, req: ChatRequest | CompletionRequest,
               max_tokens: int | None) -> str:
    """Everything but the content: only requests alike in these may share an answer."""
    params = req.model_dump(exclude_none=True, exclude=CONTENT_FIELDS)
    params["max_tokens"] = max_tokens
    roles = [m.role for m in req.messages] if isinstance(req, ChatRequest) else ["prompt"]
    return hashlib.sha256(orjson.dumps({"e": endpoint, "t": tier, "m": model, "p": params,
                                        "r": roles}, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SemanticCache:
    def __init__(self, config: CacheConfig, embed: Embed, max_entries: int = 4096) -> None:
        self.config = config
        self.embed = embed
        self.max_entries = max_entries
        # bucket -> exact key -> (unit vector, answer, created)
        self.buckets: dict[str, OrderedDict[str, tuple[np.ndarray, Completion, float]]] = {}
        self._pending: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self.size = 0

    @property
    def enabled(self) -> bool:
        return self.config.enabled and self.config.semantic

    def eligible(self, req: ChatRequest | CompletionRequest) -> bool:
        if not self.enabled or isinstance(req, CompletionRequest) and req.suffix:
            return False
        return self.config.semantic_include_code or not has_code(req.prompt_text())

    async def get(self, key: str, endpoint: str, tier: str, model: str,
                  req: ChatRequest | CompletionRequest) -> SemanticHit | None:
        """The closest earlier answer at or above the threshold; else None (and the request's
        vector is kept so that ``put(key, ...)`` files the coming answer under it)."""
        if not self.eligible(req):
            return None
        vector = await self._embed(req.prompt_text())
        if vector is None:
            return None
        bucket = bucket_key(endpoint, tier, model, req, req.token_limit())
        best = self._nearest(bucket, vector)
        if best is not None:
            return best
        self._pending[key] = (bucket, vector)
        while len(self._pending) > 1024:  # answers that never came (errors, disconnects)
            self._pending.popitem(last=False)
        return None

    def put(self, key: str, completion: Completion) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        bucket, vector = pending
        entries = self.buckets.setdefault(bucket, OrderedDict())
        if key not in entries:
            self.size += 1
        entries[key] = (vector, completion, time.time())
        while self.size > self.max_entries:
            self._evict_oldest()

    def _nearest(self, bucket: str, vector: np.ndarray) -> SemanticHit | None:
        entries = self.buckets.get(bucket)
        if not entries:
            return None
        now = time.time()
        for key in [k for k, (_, _, t) in entries.items() if now - t > self.config.ttl]:
            del entries[key]
            self.size -= 1
        if not entries:
            return None
        keys = list(entries)
        matrix = np.stack([entries[k][0] for k in keys])
        scores = matrix @ vector
        i = int(np.argmax(scores))
        score = float(scores[i])
        if score < self.config.semantic_threshold:
            return None
        _, completion, created = entries[keys[i]]
        entries.move_to_end(keys[i])
        return SemanticHit(completion, created, score)

    def _evict_oldest(self) -> None:
        oldest = min((e for e in self.buckets.values() if e),
                     key=lambda e: next(iter(e.values()))[2])
        oldest.popitem(last=False)
        self.size -= 1

    async def _embed(self, text: str) -> np.ndarray | None:
        """The text's unit vector, or None (no embedder answered, or a zero vector)."""
        raw = await self.embed(text)
        if raw is None:
            return None
        vector = np.asarray(raw, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else None
