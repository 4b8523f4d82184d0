"""Stage 2, compression: a real LLMLingua run (SmolLM2 on CPU, offline) and the rules that
recommend against compressing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devloop.config import Profile, load_profile
from devloop.evals.evalset import load_evalset
from devloop.pipeline.cache_order import analyse_cache_order
from devloop.pipeline.cache_prices import cache_pricing
from devloop.pipeline.compression import (
    analyse_compression,
    classify_content,
    expected_texts,
    lost_texts,
)
from devloop.pipeline.compression_parts import COMPRESSOR_ID, ProtectedCompressor
from devloop.pipeline.lingua import LinguaCompressor
from devloop.pipeline.providers import ModelTokenizer
from devloop.store.compressions import CompressionCache
from tests.pipeline.conftest import block, style_guide, write
from tests.pipeline.test_compression_safety import DropEveryOther

SONNET = "anthropic/claude-sonnet-4-5"

PYTHON_MODULE = '''
import json
from dataclasses import dataclass


@dataclass
class Invoice:
    number: str
    total_cents: int
    currency: str


def parse_invoice(raw: str) -> Invoice:
    data = json.loads(raw)
    if data["currency"] not in {"EUR", "USD", "GBP"}:
        raise ValueError(f"unsupported currency: {data['currency']}")
    return Invoice(data["number"], int(round(data["total"] * 100)), data["currency"])


def total(invoices: list[Invoice]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for inv in invoices:
        sums[inv.currency] = sums.get(inv.currency, 0) + inv.total_cents
    return sums


class Ledger:
    def __init__(self) -> None:
        self.rows: list[Invoice] = []

    def add(self, invoice: Invoice) -> None:
        if any(r.number == invoice.number for r in self.rows):
            raise KeyError(invoice.number)
        self.rows.append(invoice)

    def balance(self, currency: str) -> int:
        return sum(r.total_cents for r in self.rows if r.currency == currency)
'''


def evalset_with_context(tmp_path: Path, context: str, name: str = "ctx") -> Path:
    text = (f"name: {name}\nproduction_model: {SONNET}\nprompt:\n  system: |\n"
            f"{block(context, 4)}\n  messages:\n    - role: user\n"
            "      content: \"Question: {{question}}\"\n"
            "cases:\n"
            "  - {id: one, vars: {question: \"What must a review comment say?\"},\n"
            "     assert: [{type: icontains-any, value: [explain, reason]}]}\n"
            "  - {id: two, vars: {question: \"How are amounts stored?\"},\n"
            "     assert: [{type: not-icontains, value: dollars}]}\n")
    return write(tmp_path / f"{name}.yaml", text)


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("default")


async def compress_stage(path: Path, compressor, tokenizer, profile: Profile, **kw):
    es = load_evalset(path)
    pricing = cache_pricing(profile, SONNET)
    tok = ModelTokenizer(SONNET)
    cache = analyse_cache_order(es, pricing, tok, production_model=SONNET)
    return await analyse_compression(es, compressor, tok, pricing, cache, **kw)


def document_evalset(tmp_path: Path, document: str, name: str = "doc") -> Path:
    """A short instruction and a long per-call document (the part compression may touch)."""
    cases = "".join(f"  - id: c{i}\n    vars:\n      doc: |\n{block(document + extra, 8)}\n"
                    "    assert: [{type: icontains-any, value: [explain, reason]}]\n"
                    for i, extra in enumerate(("", "\nPlease reply before the 12th.")))
    return write(tmp_path / f"{name}.yaml",
                 f"name: {name}\nproduction_model: {SONNET}\nprompt:\n"
                 "  system: Answer the question about the document in two sentences.\n"
                 "  messages:\n    - {role: user, content: \"Document:\\n{{doc}}\"}\n"
                 f"cases:\n{cases}")


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_real_llmlingua_run_offline_deterministic_protected_and_cached(
        tmp_path: Path, lingua_home: Path, lingua: LinguaCompressor, tokenizer,
        profile: Profile, loopback_only: list[object]) -> None:
    # Prose with URLs, numbers and identifiers: a per-call document, not instruction text.
    document = style_guide().split("## 3.")[0] + (
        "\nSee https://wiki.example.com/review-guide#nits (version 2.3, updated 2025-01-14) and "
        "the review_bot setting max_nits_per_pr = 12.\n")
    path = document_evalset(tmp_path, document)
    db = tmp_path / "devloop.db"

    started = time.perf_counter()
    first_pc = ProtectedCompressor(lingua, ModelTokenizer(SONNET), CompressionCache(db))
    first = await compress_stage(path, first_pc, tokenizer, profile)
    first_seconds = time.perf_counter() - started
    # A second compressor loads the converted model again from disk: same result; and a
    # third reads every result from the cache (the model is not even loaded).
    again = LinguaCompressor(lingua_home)
    second = await compress_stage(path, ProtectedCompressor(again, ModelTokenizer(SONNET)),
                                  tokenizer, profile)
    unused = LinguaCompressor(tmp_path / "never-loaded")
    cached_pc = ProtectedCompressor(unused, ModelTokenizer(SONNET), CompressionCache(db))
    third = await compress_stage(path, cached_pc, tokenizer, profile)

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert loopback_only == []  # nothing tried to reach the network
    assert again.convert_seconds == 0.0  # the folder under $DEVLOOP_HOME/models was reused
    assert (lingua_home / "models" / "smollm2-135m-instruct-hf" / "config.json").is_file()

    [part] = first.parts
    assert (part.kind, part.where, part.content) == ("document", "var:doc", "prose")
    assert 0 < part.compressed_tokens < part.origin_tokens  # about -10% here, protected
    assert first.recommendation == "skip"  # too small a saving, or not validated on production
    assert first.reasons and (first.candidate or "saves only" in (part.reason or ""))
    # the compressed prompt to validate is offered exactly when compression is a candidate
    assert (first.compressed_prompt is not None) == first.candidate
    cache = CompressionCache(db)
    for case in load_evalset(path).cases:  # the stored results: no new model run
        out = cache.get(case.vars["doc"], first.rate, COMPRESSOR_ID)
        assert out is not None and len(out) < len(case.vars["doc"])
        for span in ("https://wiki.example.com/review-guide#nits", "2.3", "2025-01-14",
                     "review_bot", "max_nits_per_pr", "12"):
            assert span in out, span
    assert (second.compressed_tokens, second.reasons) == (first.compressed_tokens, first.reasons)
    assert (third.compressed_tokens, third.reasons) == (first.compressed_tokens, first.reasons)
    assert cached_pc.cache_hits == 2 and unused.load_seconds is None
    print(f"\ncompression of {part.origin_tokens:.0f} tokens x 2 cases: {first_seconds:.1f}s "
          f"(convert {lingua.convert_seconds}, load {lingua.load_seconds:.1f}s)")


async def test_code_heavy_prompt_is_not_compressed(tmp_path: Path, tokenizer,
                                                   profile: Profile) -> None:
    context = "Answer questions about this module.\n\n```python" + PYTHON_MODULE + "```\n"
    path = evalset_with_context(tmp_path, context, "code")
    result = await compress_stage(path, DropEveryOther(), tokenizer, profile)
    assert result.recommendation == "skip"
    assert "instruction text" in (result.parts[0].reason or "")
    allowed = await compress_stage(path, DropEveryOther(), tokenizer, profile,
                                   allow_instructions=True)
    assert allowed.parts[0].content == "code" and allowed.status == "warn"
    assert any("do not compress: code" in r for r in allowed.reasons)
    # The code block is protected: the compressor never saw it.
    assert allowed.parts[0].compressed_tokens == allowed.parts[0].origin_tokens


async def test_short_prompt_has_nothing_to_compress(tmp_path: Path, tokenizer,
                                                    profile: Profile) -> None:
    # Nothing to compress: the model is never loaded.
    compressor = LinguaCompressor(tmp_path / "unused-home")
    result = await compress_stage(evalset_with_context(tmp_path, "Be brief."), compressor,
                                  tokenizer, profile)
    assert result.status == "skipped" and result.recommendation == "skip"
    assert result.origin_tokens == 0 and "nothing to compress" in result.reasons[0]
    assert not (tmp_path / "unused-home").exists()


@pytest.mark.parametrize(("text", "kind"), [
    ("```python" + PYTHON_MODULE + "```", "code"),
    (PYTHON_MODULE, "code"),
    ("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-def f(): pass\n+def g(): pass\n", "code"),
    ("The loss is $L = \\frac{1}{n} \\sum_i (y_i - \\hat y_i)^2$ and its gradient "
     "$\\nabla L = \\frac{2}{n} X^T (X w - y)$; with $\\lambda \\ge 0$ we add "
     "$\\lambda \\|w\\|^2$.", "math"),
    ("This Agreement shall be governed by the laws of Delaware. The Licensee hereby agrees "
     "to indemnify the Licensor against any liability arising pursuant to Section 4, "
     "notwithstanding any termination of this Agreement.", "contract"),
    ("Keep sentences short and say who does what. Link to related pages instead of "
     "repeating them.", "prose"),
])
def test_classify_content(text: str, kind: str) -> None:
    assert classify_content(text)[0] == kind


def test_lost_expected_text(tmp_path: Path) -> None:
    es = load_evalset(write(tmp_path / "x.yaml", """
        name: x
        prompt: {system: "Extract.", messages: [{role: user, content: "{{email}}"}]}
        cases:
          - id: a
            vars: {email: "Invoice GL-5520 totals GBP 8,615.20"}
            assert:
              - {type: contains, value: GL-5520}
              - {type: icontains-any, value: [gbp, pounds]}
              - {type: not-contains, value: EUR}
              - {type: is-json}
    """))
    expected = expected_texts(es)
    assert expected == [("a", "GL-5520"), ("a", "gbp"), ("a", "pounds")]
    before = {"a": "Invoice GL-5520 totals GBP 8,615.20"}
    assert lost_texts(expected, before, {"a": "Invoice totals G 8,615"}) == ["GL-5520", "gbp"]
    assert lost_texts(expected, before, {"a": "GL-5520 GBP"}) == []
