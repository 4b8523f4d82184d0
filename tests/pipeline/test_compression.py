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
from devloop.pipeline.lingua import LinguaCompressor
from tests.pipeline.conftest import block, style_guide, write

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


async def compress_stage(path: Path, compressor: LinguaCompressor, tokenizer, profile: Profile):
    es = load_evalset(path)
    pricing = cache_pricing(profile, SONNET)
    cache = analyse_cache_order(es, pricing, tokenizer, production_model=SONNET)
    return await analyse_compression(es, compressor, tokenizer, pricing, cache)


@pytest.mark.slow
async def test_real_llmlingua_run_offline_and_deterministic(
        tmp_path: Path, lingua_home: Path, lingua: LinguaCompressor, tokenizer,
        profile: Profile, loopback_only: list[object]) -> None:
    # Prose below the provider's minimum cacheable length: caching cannot help it,
    # compression can.
    context = style_guide().split("## 4.")[0]
    assert 300 < len(tokenizer.encode(context)) < 1024
    path = evalset_with_context(tmp_path, context)

    started = time.perf_counter()
    first = await compress_stage(path, lingua, tokenizer, profile)
    first_seconds = time.perf_counter() - started
    # A second compressor loads the converted model again from disk: same result.
    again = LinguaCompressor(lingua_home)
    second = await compress_stage(path, again, tokenizer, profile)

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert loopback_only == []  # nothing tried to reach the network
    assert again.convert_seconds == 0.0  # the folder under $DEVLOOP_HOME/models was reused
    assert (lingua_home / "models" / "smollm2-135m-instruct-hf" / "config.json").is_file()

    assert first.status == "pass" and first.recommendation == "compress"
    assert 0 < first.compressed_tokens < 0.8 * first.origin_tokens
    assert first.origin_tokens == len(tokenizer.encode(context.rstrip("\n")))
    price = cache_pricing(profile, SONNET).price
    assert price is not None
    assert first.saved_usd_per_1k_calls == pytest.approx(
        (first.origin_tokens - first.compressed_tokens) * price.input * 1000, rel=1e-6)
    assert first.reasons[0].startswith("compress system:")
    [part] = first.parts
    assert (part.kind, part.content, part.in_cacheable_prefix) == ("static", "prose", False)

    assert second.origin_tokens == first.origin_tokens
    assert second.compressed_tokens == first.compressed_tokens
    assert second.compressed_prompt == first.compressed_prompt
    assert second.compressed_prompt is not None
    assert second.compressed_prompt["messages"][0]["content"] == "Question: {{question}}"
    print(f"\ncompression of {first.origin_tokens:.0f} tokens: {first_seconds:.1f}s "
          f"(convert {lingua.convert_seconds}, load {lingua.load_seconds:.1f}s)")


async def test_code_heavy_prompt_is_not_compressed(tmp_path: Path, lingua: LinguaCompressor,
                                                   tokenizer, profile: Profile) -> None:
    context = "Answer questions about this module.\n\n```python" + PYTHON_MODULE + "```\n"
    result = await compress_stage(evalset_with_context(tmp_path, context, "code"), lingua,
                                  tokenizer, profile)
    assert result.recommendation == "skip"
    assert result.status == "warn"
    assert result.parts[0].content == "code"
    assert any("do not compress: code" in r for r in result.reasons)
    assert result.origin_tokens > 200 and not result.parts[0].measured


async def test_cacheable_prefix_is_not_compressed(tmp_path: Path, lingua: LinguaCompressor,
                                                  tokenizer, profile: Profile) -> None:
    result = await compress_stage(evalset_with_context(tmp_path, style_guide(), "guide"),
                                  lingua, tokenizer, profile)
    assert result.recommendation == "skip" and result.status == "warn"
    [part] = result.parts
    assert part.in_cacheable_prefix and not part.compress
    assert "inside the cacheable prefix" in (part.reason or "")
    # Blocked before the model runs: nothing is measured, nothing claimed as saved.
    assert not part.measured and result.compressed_tokens == result.origin_tokens
    assert result.saved_usd_per_1k_calls == 0.0 and result.compressed_prompt is None


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
