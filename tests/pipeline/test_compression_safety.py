"""Compression that is safe by construction, tested with a deterministic word-dropping
compressor (the protection, pricing and advice logic are pure; real LLMLingua runs are in
test_compression.py, marked slow): protected spans survive, long text goes in bounded
windows, results are cached by the text's hash, instruction text is refused, savings are
priced where the tokens sit and shown next to caching, "compress" needs a production eval,
and the advice is the same whatever --stage asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from devloop.config import Profile, Settings, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.cache_order import analyse_cache_order, cache_pricing
from devloop.pipeline.checker import Checker
from devloop.pipeline.compression import analyse_compression
from devloop.pipeline.compression_parts import ProtectedCompressor
from devloop.pipeline.protect import compress_protected, missing_protected, protected_spans
from devloop.pipeline.providers import ModelTokenizer
from devloop.store.compressions import CompressionCache
from tests.pipeline.conftest import block, style_guide, write

SONNET = "anthropic/claude-sonnet-4-5"
DATA = Path(__file__).parent / "data" / "realistic"


class DropEveryOther:
    """Keeps every other word: garbles whatever it is shown."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def compress(self, text: str, rate: float) -> str:
        self.calls.append(text)
        return " ".join(text.split()[::2])


SOURCES = (
    "[1] Announcing Rust 1.80.0 - https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html "
    "The Rust team is happy to announce a new version of Rust, 1.80.0, released on July 25, "
    "2024, which stabilises LazyCell and LazyLock and checks cfg names at compile time for "
    "the 1,243 merged pull requests from 375 contributors listed in the notes.\n"
    "Reply with no_search_needed when no source is needed, and wrap the answer in <answer> "
    "tags; cite as [1](https://example.com/page) and call `parse_invoice(raw)` or "
    "ledger.balance for totals in GBP 8,615.20 (invoice GL-5520, see user@example.com).\n"
    "```python\ndef total(rows):\n    return sum(r.cents for r in rows)\n```\n"
)


def test_protected_spans_survive_a_garbling_compressor(tokenizer) -> None:
    out = compress_protected(SOURCES, 0.5, DropEveryOther().compress,
                             lambda t: len(tokenizer.encode(t)))
    assert len(out) < len(SOURCES)  # the prose was compressed
    for kept in ("https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html", "1.80.0",
                 "July 25, 2024", "1,243", "375", "no_search_needed", "<answer>",
                 "[1](https://example.com/page)", "`parse_invoice(raw)`", "ledger.balance",
                 "GBP", "8,615.20", "GL-5520", "user@example.com", "LazyCell",
                 "def total(rows):\n    return sum(r.cents for r in rows)"):
        assert kept in out, kept
    assert missing_protected(SOURCES, out) == []
    assert out.count("\n```") == 2 and out.endswith("```\n")  # the code block keeps its lines
    wrapped = "A plain paragraph that a writer wrapped\nat a fixed width, as YAML blocks do,\n" \
              "continues here on a third line.\n\n- an item stays\n- on its own line\n"
    joined = compress_protected(wrapped, 0.5, lambda t, r: t, lambda t: len(t.split()))
    assert joined.startswith("A plain paragraph that a writer wrapped at a fixed width")
    assert joined.endswith("line.\n\n- an item stays\n- on its own line\n")


def test_long_text_goes_through_in_bounded_windows(tokenizer) -> None:
    words = ["plain", "calm", "grey", "windy", "sunny", "cold", "warm", "bright", "dull", "mild"]
    text = " ".join(f"The weather is {words[i % 10]} and {words[(i * 3) % 10]} again today."
                    for i in range(600))
    assert len(tokenizer.encode(text)) > 5000
    fake = DropEveryOther()
    compress_protected(text, 0.5, fake.compress, lambda t: len(tokenizer.encode(t)),
                       window_tokens=400)
    assert len(fake.calls) > 10
    assert max(len(tokenizer.encode(c)) for c in fake.calls) <= 400


def test_results_are_cached_by_the_texts_hash(tmp_path: Path, tokenizer) -> None:
    cache = CompressionCache(tmp_path / "devloop.db")
    fake = DropEveryOther()
    pc = ProtectedCompressor(fake, tokenizer, cache)
    text = "This plain paragraph has enough ordinary words in it to be worth compressing now."
    first = pc.compress(text, 0.5)
    calls = len(fake.calls)
    again = ProtectedCompressor(fake, tokenizer, CompressionCache(tmp_path / "devloop.db"))
    assert again.compress(text, 0.5) == first and len(fake.calls) == calls
    assert again.cache_hits == 1
    again.compress(text + " Changed.", 0.5)
    assert len(fake.calls) > calls  # a changed text is compressed again


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("default")


async def compress(path: Path, profile: Profile, **kw: object):
    es = load_evalset(path)
    model = es.model_for(profile.production_model)
    pricing = cache_pricing(profile, model)
    tok = ModelTokenizer(model)
    cache = analyse_cache_order(es, pricing, tok, production_model=model)
    return await analyse_compression(es, DropEveryOther(), tok, pricing, cache,
                                     **kw)  # type: ignore[arg-type]


async def test_instruction_text_is_never_compressed_by_default(tmp_path: Path,
                                                               profile: Profile) -> None:
    path = write(tmp_path / "guide.yaml",
                 f"name: guide\nproduction_model: {SONNET}\nprompt:\n  system: |\n"
                 f"{block(style_guide(), 4)}\n  messages:\n"
                 "    - {role: user, content: \"{{question}}\"}\n"
                 "cases:\n  - {id: a, vars: {question: x}}\n  - {id: b, vars: {question: y}}\n")
    r = await compress(path, profile)
    [part] = r.parts
    assert part.kind == "static" and part.where == "system" and part.measured
    assert part.blocked and "instruction text" in (part.reason or "")
    assert r.recommendation == "skip" and not r.candidate
    # It is measured and shown next to caching: the text sits in the cached prefix, so
    # compressing it saves at most the cache-read mix, and caching saves far more.
    assert 0 < part.compressed_tokens < part.origin_tokens
    assert part.in_cacheable_prefix and part.preferred == "caching"
    assert part.caching_saved_usd_per_1k_calls > 3 * part.saved_usd_per_1k_calls
    p = cache_pricing(profile, SONNET).price
    full_rate = (part.origin_tokens - part.compressed_tokens) * p.input * 1000
    assert part.saved_usd_per_1k_calls < 0.3 * full_rate  # priced at the cache-read mix
    assert r.reasons[0].startswith("system: do not compress: instruction text")
    assert "caching saves $" in r.reasons[0]
    # Asked for explicitly, instruction text may be compressed; caching still wins here.
    allowed = await compress(path, profile, allow_instructions=True)
    assert not allowed.parts[0].blocked and allowed.parts[0].reason == "caching saves more on it"


THREAD = (
    "Hello there, I wanted to follow up on the problem we talked about last week because it "
    "is still happening and it is getting quite frustrating for the whole team here. Every "
    "morning when we open the dashboard the page takes a very long time to load and then "
    "some of the charts stay empty until somebody refreshes the page a couple of times. We "
    "have tried clearing the browser cache and using a different browser as your colleague "
    "suggested, but that did not make any real difference for us. It also happens on the "
    "laptops at home, so we do not think that it is something about our office network. "
)


def thread_evalset(tmp_path: Path) -> Path:
    cases = "".join(
        f"  - id: t{i}\n    vars: {{thread: \"{THREAD * (i + 2)}\"}}\n" for i in range(2))
    return write(tmp_path / "thread.yaml",
                 f"name: thread\nproduction_model: {SONNET}\nprompt:\n"
                 "  system: Summarise the customer's e-mail thread in three sentences.\n"
                 "  messages:\n    - {role: user, content: \"Thread:\\n{{thread}}\"}\n"
                 f"cases:\n{cases}")


async def test_documents_are_candidates_until_the_production_eval_validates(
        tmp_path: Path, profile: Profile) -> None:
    path = thread_evalset(tmp_path)
    r = await compress(path, profile)
    [doc] = r.parts
    assert doc.kind == "document" and doc.where == "var:thread"
    assert not doc.blocked and doc.compress and doc.content == "prose"
    assert doc.preferred == "compression" and doc.caching_saved_usd_per_1k_calls == 0
    p = cache_pricing(profile, SONNET).price
    assert doc.saved_usd_per_1k_calls == pytest.approx(  # per call: the full input price
        (doc.origin_tokens - doc.compressed_tokens) * p.input * 1000, rel=1e-6)
    assert r.candidate and not r.validated and r.recommendation == "skip"
    assert r.reasons[0].startswith("candidate: compress var:thread")
    assert f"run `devloop eval` on the production model ({SONNET})" in r.reasons[0]
    assert "compression is the larger saving (it changes on every call)" in r.reasons[1]
    assert r.compressed_prompt is not None and r.compressed_prompt_hash
    validated = await compress(path, profile,
                               validated=lambda h: h == r.compressed_prompt_hash)
    assert validated.recommendation == "compress" and validated.validated
    assert "validated: the compressed prompt passed devloop eval" in validated.reasons[0]


async def test_number_dense_sources_keep_every_url_and_number(profile: Profile) -> None:
    es = load_evalset(DATA / "rag-answer.yaml")
    fake = DropEveryOther()
    tok = ModelTokenizer("openai/gpt-4o")
    pc = ProtectedCompressor(fake, tok)
    for case in es.cases:
        text = case.vars["sources"]
        out = pc.compress(text, 0.5)
        assert missing_protected(text, out) == []
    r = await compress(DATA / "rag-answer.yaml", profile)
    doc = next(p for p in r.parts if p.where == "var:sources")
    assert not doc.compress and "saves only" in (doc.reason or "")  # protection leaves little


async def test_local_pass_rate_never_changes_the_advice(tmp_path: Path,
                                                        profile: Profile) -> None:
    path = thread_evalset(tmp_path)

    async def perfect(_es: object) -> float:
        return 1.0

    async def broken(_es: object) -> float:
        return 0.0

    base = await compress(path, profile)
    for rerun in (perfect, broken):
        r = await compress(path, profile, rerun=rerun, baseline_pass_rate=1.0)
        assert r.compressed_pass_rate in (0.0, 1.0)
        assert (r.recommendation, r.reasons) == (base.recommendation, base.reasons)


async def test_advice_is_identical_across_stage_choices(tmp_path: Path) -> None:
    profile = load_profile("default")
    settings = Settings(home=tmp_path / "home")
    results = []
    for stages in (("compression",), ("cache_order", "compression"),
                   ("compression", "cache_order")):
        checker = Checker(settings, profile, compressor=DropEveryOther(), store=False)
        report = await checker.check_file(DATA / "rag-answer.yaml", stages)
        assert set(report.stages) == set(stages)
        body = report.to_json()["stages"]["compression"]
        results.append({k: body[k] for k in ("recommendation", "reasons", "origin_tokens",
                                             "compressed_tokens", "saved_usd_per_1k_calls",
                                             "caching_saved_usd_per_1k_calls")})
        if "cache_order" not in stages:  # it ran anyway, first, and is not reported
            assert report.to_json()["stages"]["cache_order"]["status"] == "skipped"
    assert results[0] == results[1] == results[2]
    assert results[0]["recommendation"] == "skip" and results[0]["reasons"]


def test_protected_pattern_covers_each_kind() -> None:
    text = "see https://a.io/x, v2.5, snake_case, camelCase, ALL_CAPS, <tag>, `code`, {{var}}"
    spans = [text[s:e] for s, e in protected_spans(text)]
    for kept in ("https://a.io/x", "2.5", "snake_case", "camelCase", "ALL_CAPS", "<tag>",
                 "`code`", "{{var}}"):
        assert any(kept in s for s in spans), kept
