"""The embedded model's KV prefix cache, with the real model (SmolLM2-135M).

Correctness, not speed: an answer built on a restored state is the answer computed from
scratch (temperature 0), the reused tokens are reported, and the bounds hold.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from devloop.backends.embedded import LlamaRunner, default_gguf
from devloop.config import Settings
from tests.helpers import start_server, write_profile

pytestmark = pytest.mark.slow

RULES = [
    "Names say what a value means.", "Functions do one thing.", "Every public function has type "
    "hints.", "Errors name the input that was wrong.", "Never log secrets or tokens.",
    "Tests assert behaviour, not implementation.", "Never block the event loop.",
    "Build SQL with parameters.", "Measure before optimising.", "Docstrings explain why.",
]


def system(tag: str) -> str:
    """A system prompt of about 110 tokens, different from its first word on per tag."""
    body = " ".join(f"Rule {i}: {r}" for i, r in enumerate(RULES, 1))
    return f"{tag} team style guide. Quote the rule you rely on. {body}"


SHARED = 90  # at least this many tokens of a prompt are its tag's system prompt


def chat(runner: LlamaRunner, sys_text: str, user: str, max_tokens: int = 8,
         kind: str = "chat") -> dict[str, Any]:
    prompt, stops = runner.render_chat([{"role": "system", "content": sys_text},
                                        {"role": "user", "content": user}])
    return runner.generate(prompt, {"max_tokens": max_tokens, "temperature": 0, "stop": stops},
                           kind)


def runner(home: Path, **settings: Any) -> LlamaRunner:
    return LlamaRunner(default_gguf(), 2048, settings=Settings(home=home, **settings))


def text(result: dict[str, Any]) -> str:
    return str(result["choices"][0]["text"])


def test_restored_prefix_gives_the_same_answer_as_computing_it(tmp_path: Path) -> None:
    cached = runner(tmp_path / "a", embedded_prefix_cache_disk_mb=0)
    plain = runner(tmp_path / "b", embedded_prefix_cache_mb=0)
    first = chat(cached, system("Acme"), "Review: def f(x): return eval(x)")
    chat(cached, system("Globex"), "Review: def f(x): return eval(x)")  # evicts A from the context
    again = chat(cached, system("Acme"), "Review: password = 'hunter2'")
    fresh = chat(plain, system("Acme"), "Review: password = 'hunter2'")
    assert first["usage"]["prompt_tokens"] > SHARED
    assert again["usage"]["cached_tokens"] >= SHARED  # A's prefix came from the store
    assert fresh["usage"]["cached_tokens"] == 0
    assert text(again) == text(fresh)
    assert again["usage"]["prompt_tokens"] == fresh["usage"]["prompt_tokens"]
    assert cached.prefix_cache is not None and cached.prefix_cache.store.stats.hits >= 1
    cached.close()
    plain.close()


def test_prefix_state_survives_a_new_process_on_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one = runner(home)
    chat(one, system("Initech"), "Review: x = 1")
    one.close()  # flushes the state to $DEVLOOP_HOME/kv-prefix
    assert list((home / "kv-prefix").glob("*/*.kvp"))
    two = runner(home)
    warm = chat(two, system("Initech"), "Review: y = 2")
    cold = chat(runner(tmp_path / "other", embedded_prefix_cache_mb=0), system("Initech"),
                "Review: y = 2")
    assert warm["usage"]["cached_tokens"] >= SHARED
    assert text(warm) == text(cold)
    assert two.prefix_cache is not None and two.prefix_cache.store.stats.disk_loads == 1
    two.close()


def test_ram_bound_is_respected(tmp_path: Path) -> None:
    r = runner(tmp_path / "home", embedded_prefix_cache_mb=4, embedded_prefix_cache_disk_mb=0)
    for tag in ("Acme", "Globex", "Initech"):  # each state is about 3 MB: one fits in 4
        chat(r, system(tag), "Review: x = 1")
        assert r.prefix_cache is not None
        assert r.prefix_cache.store.ram_used() <= 4 * 1024 * 1024
    assert r.prefix_cache is not None and r.prefix_cache.store.stats.evictions >= 2
    back = chat(r, system("Acme"), "Review: x = 1")  # evicted: only the template start is shared
    assert back["usage"]["cached_tokens"] < 20
    r.close()


def test_prefix_cache_off_reuses_only_the_last_prompt(tmp_path: Path) -> None:
    r = runner(tmp_path / "home", embedded_prefix_cache_mb=0)
    chat(r, system("Acme"), "Review: x = 1")
    same = chat(r, system("Acme"), "Review: y = 2")  # llama-cpp-python's own reuse
    chat(r, system("Globex"), "Review: x = 1")
    back = chat(r, system("Acme"), "Review: x = 1")
    assert same["usage"]["cached_tokens"] >= SHARED
    assert back["usage"]["cached_tokens"] < 20
    r.close()


EDIT = ("Add type hints to this function and keep everything else the same.\n```python\n"
        "def total(prices, tax):\n    subtotal = sum(prices)\n    return subtotal + subtotal * tax\n```")


def test_speculation_is_on_for_one_request_only(tmp_path: Path) -> None:
    """Prompt lookup switched on for an edit request leaves the model as it found it: the
    next ordinary answer is the one a runner that never speculated gives."""
    spec = runner(tmp_path / "a", embedded_speculative="edit", embedded_prefix_cache_mb=0)
    plain = runner(tmp_path / "b", embedded_speculative="", embedded_prefix_cache_mb=0)
    edited = chat(spec, "You are a careful programmer.", EDIT, 16, "edit")
    chat(plain, "You are a careful programmer.", EDIT, 16, "edit")
    assert text(edited).strip() and edited["usage"]["completion_tokens"] > 0
    llm = spec._llm
    assert llm.draft_model is None and llm._logits_all is False and llm.scores.strides[0] > 0
    question = "Name three prime numbers."
    assert text(chat(spec, "You are a careful programmer.", question, 16)) == \
        text(chat(plain, "You are a careful programmer.", question, 16))
    spec.close()
    plain.close()


PROFILE = """
name: embedded-prefix
production_model: anthropic/claude-sonnet-4-5
tiers:
  embedded: {backend: embedded, model: smollm2-135m, n_ctx: 2048}
routes:
  - {tier: embedded}
fallbacks: []
cache: {enabled: false}
"""


def test_cached_tokens_are_reported_and_metered(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "embedded-prefix.yaml", PROFILE)
    server = start_server(profile, tmp_path / "home")
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused",
                               max_retries=0, timeout=120)

        def ask(tag: str, user: str) -> Any:
            return client.chat.completions.create(
                model="embedded", temperature=0, max_tokens=8,
                messages=[{"role": "system", "content": system(tag)},
                          {"role": "user", "content": user}])

        first = ask("Acme", "Review: x = 1")
        ask("Globex", "Review: x = 1")
        back = ask("Acme", "Review: y = 2")
        assert first.usage.prompt_tokens_details is None  # nothing reused on a cold start
        details = back.usage.prompt_tokens_details
        assert details is not None and details.cached_tokens >= SHARED
        assert details.cached_tokens < back.usage.prompt_tokens
        stream = client.chat.completions.create(
            model="embedded", temperature=0, max_tokens=8, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "system", "content": system("Globex")},
                      {"role": "user", "content": "Review: z = 3"}])
        last = list(stream)[-1]
        assert last.usage is not None and last.usage.prompt_tokens_details is not None
        assert last.usage.prompt_tokens_details.cached_tokens >= SHARED
        rows = ledger_rows(server.db_path, 4)
        assert [r[0] >= SHARED for r in rows] == [False, False, True, True]
        assert all(r[1] == 0 for r in rows)  # priced as local: free
    finally:
        server.stop()


def ledger_rows(db: Path, n: int) -> list[tuple[int, float]]:
    deadline = time.monotonic() + 10
    while True:
        conn = sqlite3.connect(db)
        try:
            rows = conn.execute("SELECT cached_tokens, cost_usd FROM calls "
                                "WHERE endpoint = 'chat' ORDER BY ts").fetchall()
        finally:
            conn.close()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
