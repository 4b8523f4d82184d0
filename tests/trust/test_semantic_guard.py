"""Must show 3 (in process): the guard, the persisted index, the false-positive turn-off."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from devloop.config import CacheConfig
from devloop.semantic_cache import SemanticCache
from devloop.semantic_guard import disagreement
from devloop.store.db import open_db
from devloop.store.writer import DbWriter
from devloop.types import ChatRequest, Completion, Usage


@pytest.mark.parametrize("a,b,why", [
    ("What is the capital of Germany?", "What is the capital of France?", "named entities"),
    ("Is 7917 a prime number?", "Is 7919 a prime number?", "numbers"),
    ("Convert 3.5 km to miles", "Convert 35 km to miles", "numbers"),
    ("Is Python a compiled language?", "Is Python not a compiled language?", "negated"),
    ("Why does my test pass?", "Why doesn't my test pass?", "negated"),
    ("Who founded Apple?", "Who founded Microsoft?", "named entities"),
    ("What does `x.sort()` return?", "What does `sorted(x)` return?", "code spans"),
])
def test_pairs_that_differ_where_it_matters_disagree(a: str, b: str, why: str) -> None:
    reason = disagreement(a, b)
    assert reason is not None and why in reason


@pytest.mark.parametrize("a,b", [
    ("What is the capital of France?", "What's the capital city of France?"),
    ("Tell me France's capital.", "What is the capital of France?"),
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("Is 7919 a prime number?", "Is the number 7919 prime?"),
    ("Explain what a mutex is.", "What is a mutex? Explain briefly."),
])
def test_true_paraphrases_agree(a: str, b: str) -> None:
    assert disagreement(a, b) is None


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedder: hashed word counts (paraphrases share most words)."""
    v = np.zeros(256, dtype=np.float32)
    for w in text.lower().replace("?", " ").replace("'s", " ").split():
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % 256] += 1
    return v.tolist()


async def embed(text: str) -> list[float] | None:
    return bag_of_words(text)


def chat(text: str) -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "temperature": 0.0, "max_tokens": 10,
                                       "messages": [{"role": "user", "content": text}]})


async def lookup(cache: SemanticCache, text: str, feature: str | None = None) -> object:
    return await cache.get("k:" + text, "chat", "embedded", "m", chat(text), feature)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "devloop.db"
    open_db(path).conn.close()
    return path


async def test_guarded_cache_serves_paraphrases_only_and_persists(db: Path) -> None:
    config = CacheConfig(semantic=True, semantic_threshold=0.5)
    writer = DbWriter(db)
    conn = open_db(db).conn
    cache = SemanticCache(config, embed, writer=writer, conn=conn)
    for text, answer in (("What is the capital of France?", "Paris"),
                         ("Is 7919 a prime number?", "Yes")):
        assert await lookup(cache, text) is None
        cache.put("k:" + text, Completion(answer, "m", usage=Usage(5, 1)))
    assert await lookup(cache, "What is the capital of Germany?") is None
    assert await lookup(cache, "Is 7917 a prime number?") is None
    assert await lookup(cache, "What is not the capital of France?") is None
    assert cache.rejected >= 3  # close enough by the embedding; refused by the guard
    hit = await lookup(cache, "What's the capital city of France?")
    assert hit is not None and hit.completion.text == "Paris"  # type: ignore[attr-defined]
    assert 0.5 <= hit.similarity < 1.0  # type: ignore[attr-defined]
    assert hit.key == "k:What is the capital of France?"  # type: ignore[attr-defined]
    writer.close()  # flushes the index rows
    reopened = SemanticCache(config, embed, conn=open_db(db).conn)
    assert reopened.size == 2
    again = await lookup(reopened, "Is the number 7919 prime?")
    assert again is not None and again.completion.text == "Yes"  # type: ignore[attr-defined]


async def test_feature_over_the_false_positive_threshold_gets_no_semantic_hits(db: Path) -> None:
    config = CacheConfig(semantic=True, semantic_threshold=0.5, semantic_fp_threshold=0.2,
                         semantic_fp_min_judged=4)
    conn = open_db(db).conn
    with conn:
        for i, agree in enumerate([1, 1, 0, 1, 0]):  # 2 wrong of 5 judged: 40%
            conn.execute("INSERT INTO audit_samples (request_id, ts, kind, feature, status, "
                         "agree) VALUES (?, ?, 'semantic', 'faq', 'judged', ?)",
                         (f"s{i}", time.time(), agree))
    cache = SemanticCache(config, embed, conn=conn)
    assert await lookup(cache, "What is the capital of France?", "other") is None
    cache.put("k:What is the capital of France?", Completion("Paris", "m"))
    assert await lookup(cache, "What's the capital city of France?", "faq") is None  # off
    assert await lookup(cache, "What's the capital city of France?", "other") is not None
