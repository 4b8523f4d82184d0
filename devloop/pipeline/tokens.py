"""Offline token counting for the pipeline and the offline environment LLMLingua needs.

Counting uses tiktoken's cl100k_base from the files litellm ships (see devloop.tokens);
LLMLingua counts with tiktoken too, and loads its model through transformers, which must
never reach the Hugging Face hub.
"""

from __future__ import annotations

import os
from typing import Protocol

from devloop.tokens import encoding, use_bundled_tiktoken


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


class TiktokenCounter:
    """cl100k_base; prompts may contain "<|endoftext|>" as plain text, so nothing is special."""

    def __init__(self) -> None:
        enc = encoding()
        if enc is None:
            raise RuntimeError("tiktoken's cl100k_base is unavailable offline: install litellm "
                               "(it bundles the file) or set TIKTOKEN_CACHE_DIR")
        self._enc = enc

    def encode(self, text: str) -> list[int]:
        return list(self._enc.encode(text, disallowed_special=()))


def ensure_offline_env() -> None:
    """tiktoken from litellm's bundled files; Hugging Face and litellm kept off the network."""
    use_bundled_tiktoken()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
