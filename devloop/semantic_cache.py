"""The optional semantic cache (``cache: {semantic: true}``; off by default).

A request that misses the exact cache is embedded (by the ``embed`` callable the gateway
passes: the local tier, else the embedded one) and compared, by cosine similarity, with
earlier answered requests that had every other parameter equal (model, temperature,
max_tokens, ...: the "bucket"). At or above ``semantic_threshold`` (0.95) the earlier
answer is served. Requests that contain code are
never served this way unless ``semantic_include_code`` is set: two snippets that read alike
can need different answers. Entries live in memory, bounded, with the exact cache's TTL, and
(given a DB writer and a read connection) in SQLite too (store/semantic.py), so the index
survives a restart.

A candidate is served only when devloop/semantic_guard.py finds that the two prompts agree
on numbers, negation, named entities and code spans; else the next closest candidate above
the threshold is tried. A hit names its similarity and the entry it matched (``key``). A
feature whose judged semantic hits were wrong more often than ``semantic_fp_threshold``
(the judge worker measures it, devloop/audit/) gets no semantic hits.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from devloop.config import CacheConfig
from devloop.prompt_signals import has_code
from devloop.semantic_guard import disagreement
from devloop.store.audit import semantic_false_positives
from devloop.store.semantic import load_entries, put_job
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
    key: str = ""  # the exact-cache key of the entry it matched


# bucket -> exact key -> (unit vector, answer, created, prompt text)
Entry = tuple[np.ndarray, Completion, float, str]
FP_REFRESH_S = 30.0


def bucket_key(endpoint: str, tier: str, model: str, req: ChatRequest | CompletionRequest,
               max_tokens: int | None) -> str:
    """Everything but the content: only requests alike in these may share an answer."""
    params = req.model_dump(exclude_none=True, exclude=CONTENT_FIELDS)
    params["max_tokens"] = max_tokens
    roles = [m.role for m in req.messages] if isinstance(req, ChatRequest) else ["prompt"]
    return hashlib.sha256(orjson.dumps({"e": endpoint, "t": tier, "m": model, "p": params,
                                        "r": roles}, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SemanticCache:
    def __init__(self, config: CacheConfig, embed: Embed, max_entries: int = 4096,
                 writer: Any = None, conn: Any = None) -> None:
        self.config = config
        self.embed = embed
        self.max_entries = max_entries
        self.buckets: dict[str, OrderedDict[str, Entry]] = {}
        self._pending: OrderedDict[str, tuple[str, np.ndarray, str]] = OrderedDict()
        self.size = 0
        self.writer, self.conn = writer, conn  # persistence (optional)
        self.rejected = 0  # candidates the guard refused
        self._fp: dict[str, tuple[int, int]] = {}
        self._fp_read = -FP_REFRESH_S
        if conn is not None:
            for key, bucket, created, blob, prompt, completion in load_entries(
                    conn, time.time() - config.ttl, max_entries):
                vector = np.frombuffer(blob, dtype=np.float32).copy()
                self.buckets.setdefault(bucket, OrderedDict())[key] = (
                    vector, completion, created, prompt)
                self.size += 1

    def feature_off(self, feature: str | None) -> bool:
        """Whether the measured false-positive rate turned semantic hits off for ``feature``."""
        if self.conn is None:
            return False
        now = time.monotonic()
        if now - self._fp_read > FP_REFRESH_S:
            self._fp, self._fp_read = semantic_false_positives(self.conn), now
        judged, wrong = self._fp.get(feature or "(none)", (0, 0))
        return judged >= self.config.semantic_fp_min_judged and \
            wrong / judged > self.config.semantic_fp_threshold

    @property
    def enabled(self) -> bool:
        return self.config.enabled and self.config.semantic

    def eligible(self, req: ChatRequest | CompletionRequest) -> bool:
        if not self.enabled or isinstance(req, CompletionRequest) and req.suffix:
            return False
        return self.config.semantic_include_code or not has_code(req.prompt_text())

    async def get(self, key: str, endpoint: str, tier: str, model: str,
                  req: ChatRequest | CompletionRequest,
                  feature: str | None = None) -> SemanticHit | None:
        """The closest earlier answer at or above the threshold that the guard accepts; else
        None (and the request's vector is kept so that ``put(key, ...)`` files the coming
        answer under it)."""
        if not self.eligible(req) or self.feature_off(feature):
            return None
        prompt = req.prompt_text()
        vector = await self._embed(prompt)
        if vector is None:
            return None
        bucket = bucket_key(endpoint, tier, model, req, req.token_limit())
        best = self._nearest(bucket, vector, prompt)
        if best is not None:
            return best
        self._pending[key] = (bucket, vector, prompt)
        while len(self._pending) > 1024:  # answers that never came (errors, disconnects)
            self._pending.popitem(last=False)
        return None

    def put(self, key: str, completion: Completion) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        bucket, vector, prompt = pending
        entries = self.buckets.setdefault(bucket, OrderedDict())
        if key not in entries:
            self.size += 1
        created = time.time()
        entries[key] = (vector, completion, created, prompt)
        if self.writer is not None:
            self.writer.submit(put_job(key, bucket, created, vector.astype(np.float32).tobytes(),
                                       prompt, completion, self.max_entries))
        while self.size > self.max_entries:
            self._evict_oldest()

    def _nearest(self, bucket: str, vector: np.ndarray, prompt: str) -> SemanticHit | None:
        entries = self.buckets.get(bucket)
        if not entries:
            return None
        now = time.time()
        for key in [k for k, (_, _, t, _) in entries.items() if now - t > self.config.ttl]:
            del entries[key]
            self.size -= 1
        if not entries:
            return None
        keys = list(entries)
        matrix = np.stack([entries[k][0] for k in keys])
        scores = matrix @ vector
        for i in np.argsort(-scores):
            score = float(scores[i])
            if score < self.config.semantic_threshold:
                return None
            _, completion, created, other = entries[keys[i]]
            if disagreement(prompt, other) is not None:
                self.rejected += 1
                continue
            entries.move_to_end(keys[i])
            return SemanticHit(completion, created, score, keys[i])
        return None

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
