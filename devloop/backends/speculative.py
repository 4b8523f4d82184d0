"""Prompt-lookup speculative decoding for the embedded model, per request.

Where an answer repeats its input (rewrite this function, fill in the middle), the tokens
that follow the last generated n-gram's earlier occurrence in the context are a good guess
for what comes next: llama-cpp-python's ``LlamaPromptLookupDecoding`` proposes them and the
model checks several in one batch, keeping a proposed token only when it is the argmax.
Measured here (docs/benchmarks.md) it is off by default: on a 2-core CPU a batch of k
tokens costs about k single steps, so it only pays when nearly every guess is right; and
logits computed in a batch differ from single-token ones in the last bits, which can flip a
near-tie at temperature 0 (seen on an edit request). ``Settings.embedded_speculative``
turns it on per request kind.

llama-cpp-python fixes the draft model at construction and then asks for logits of every
prompt token; this module switches it on for one generation only, after the prompt has been
evaluated the ordinary way (one logits row), and switches it off afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from devloop.config import SPECULATIVE_KINDS as KINDS

_FENCE = re.compile(r"```|^(?: {4}|\t)\S", re.MULTILINE)


def parse_kinds(value: str) -> frozenset[str]:
    """``"fim,edit"`` -> the request kinds speculation is on for (Settings refuses others)."""
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"embedded_speculative: unknown kind {unknown[0]!r} "
                         f"(use any of {', '.join(KINDS)})")
    return kinds


def chat_kind(last_user_text: str) -> str:
    """``edit`` when the last user message carries code to work on, else ``chat``."""
    return "edit" if _FENCE.search(last_user_text) else "chat"


def eligible(kwargs: dict[str, Any]) -> bool:
    """Greedy decoding without per-token extras: the cases where the output stays identical."""
    return (kwargs.get("temperature", 0.8) == 0 and not kwargs.get("logprobs")
            and not kwargs.get("grammar") and not kwargs.get("logit_bias"))


@contextmanager
def prompt_lookup(llm: Any, tokens: list[int], reused: int, num_pred_tokens: int = 10,
                  max_ngram_size: int = 2) -> Iterator[None]:
    """Generate speculatively inside the block. ``reused``: prompt tokens whose KV is valid."""
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    if reused < len(tokens) - 1:
        # The prompt in one batch, as ordinary decoding evaluates it (one logits row): the
        # first token is then sampled from the same logits, and only decoding differs.
        llm.n_tokens = reused
        llm.eval(tokens[reused:])
    saved = llm.scores, llm._logits_all, llm.draft_model
    # With a draft model llama-cpp-python copies every evaluated row of logits into
    # ``scores`` (n_ctx x n_vocab floats: 1.6 GB at 8,192 x 49,152). Sampling reads the
    # context's own logits, so a zero-stride stand-in takes the copies without the memory.
    llm.scores = np.lib.stride_tricks.as_strided(
        np.zeros(llm._n_vocab, dtype=np.single), shape=(llm._n_ctx, llm._n_vocab),
        strides=(0, np.dtype(np.single).itemsize))
    llm._logits_all = True
    llm.draft_model = LlamaPromptLookupDecoding(max_ngram_size=max_ngram_size,
                                                num_pred_tokens=num_pred_tokens)
    try:
        yield
    finally:
        llm.scores, llm._logits_all, llm.draft_model = saved
