"""Token counting for when an upstream reports none (streams without usage), for the pipeline
(cache order, compression) and for eval estimates.

tiktoken's cl100k_base from the tokenizer files litellm ships, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol


def bundled_tiktoken_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


def use_bundled_tiktoken() -> None:
    """Point TIKTOKEN_CACHE_DIR at litellm's bundled files (unless the user set it)."""
    folder = bundled_tiktoken_dir()
    if folder is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))


@lru_cache(maxsize=1)
def encoding() -> Any:
    use_bundled_tiktoken()
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - offline with no files: fall back to an estimate
        return None


def count_tokens(text: str) -> int:
    enc = encoding()
    if enc is None:
        return max(1, len(text) // 4) if text else 0
    return len(enc.encode(text, disallowed_special=()))


def estimate_tokens(text: str) -> int:
    """A cheap estimate for routing decisions on the hot path (about 4 chars a token)."""
    return (len(text) + 3) // 4


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
