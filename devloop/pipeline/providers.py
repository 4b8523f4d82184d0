"""How each provider's prompt cache works, as data: minimum cacheable length, granularity,
lifetimes, write premium, breakpoints, and the tokenizer that counts for the model.

Minimum cacheable prefix (tokens), checked in this order: the profile's
``prompt_cache_min_tokens``; litellm's cost map field ``prompt_cache_min_tokens`` when the
bundled map has it; then this table:

- Anthropic (docs.anthropic.com "Prompt caching", "Cache limitations", 2025-2026):
  1,024 for Claude Opus 4.1, Opus 4, Sonnet 4.5, Sonnet 4, Sonnet 3.7 (and Sonnet 3.5,
  Opus 3); 2,048 for Claude Haiku 3.5 and Haiku 3 and for Sonnet 4.6; 4,096 for Claude
  Opus 4.5 and 4.6 and Haiku 4.5. Caching happens only at ``cache_control`` breakpoints on
  block boundaries (tools, system blocks, message content blocks), at most 4 per request;
  lifetimes 5 minutes (default, refreshed on each hit; writes cost 1.25x input) and 1 hour
  (writes cost 2x input); reads cost 0.1x input.
- OpenAI (platform.openai.com "Prompt caching"): automatic for prompts of 1,024 tokens or
  more, in 128-token steps (1,024, 1,152, 1,280, ...); no write premium; cached prefixes
  stay for 5-10 minutes of inactivity (up to an hour off-peak): 5 minutes is assumed.
- Google Gemini (ai.google.dev "Context caching", implicit caching for 2.5 and newer):
  1,024 for 2.5 Flash, 4,096 for 2.5 Pro (revisions of the page have said 2,048 for both;
  the API enforces 1,024 for Flash and 2,048 for Flash-Lite per the Gemini forum);
  no write premium; lifetime not documented for implicit caching: 5 minutes is assumed.

Tokenizers: tiktoken encodings from the files litellm ships (``o200k_base`` for the gpt-4o,
gpt-4.1, gpt-5, o1/o3/o4 families, ``cl100k_base`` otherwise). Claude's tokenizer is not
available offline: counts are cl100k_base times ``CLAUDE_MARGIN`` (Claude counts 4-15% more
tokens than cl100k on English prose and code; 1.10 is the stated middle).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from devloop.pricing import cost_map_entry
from devloop.tokens import use_bundled_tiktoken

CacheKind = Literal["anthropic", "openai", "gemini", "none"]
CLAUDE_MARGIN = 1.10
OPENAI_STEP = 128
MAX_BREAKPOINTS = 4
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# Anthropic's write premium per lifetime, as a multiple of the input price.
ANTHROPIC_WRITE = {"5m": 1.25, "1h": 2.0}

# (pattern over the bare model name, minimum): first match wins.
MIN_CACHEABLE: list[tuple[str, re.Pattern[str], int]] = [
    ("anthropic", re.compile(r"claude-(?:opus-4-[5-9]|opus-4\.[5-9]|4-[5-9]-opus)"), 4096),
    ("anthropic", re.compile(r"claude-(?:haiku-4|4-[5-9]-haiku)"), 4096),
    ("anthropic", re.compile(r"claude-(?:sonnet-4-[6-9]|sonnet-4\.[6-9])"), 2048),
    ("anthropic", re.compile(r"claude-(?:3-5-haiku|3-haiku|haiku-3)"), 2048),
    ("anthropic", re.compile(r"claude"), 1024),
    ("openai", re.compile(r"gpt-|^o[134]|chatgpt|codex"), 1024),
    ("gemini", re.compile(r"gemini-[\d.]+-flash-lite"), 2048),
    ("gemini", re.compile(r"gemini-[\d.]+-flash"), 1024),
    ("gemini", re.compile(r"gemini-[\d.]+-pro"), 4096),
]
_O200K = re.compile(r"(?:^|/)(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|codex)")


@dataclass(frozen=True, slots=True)
class CacheModel:
    """One model's prompt-cache behaviour."""

    kind: CacheKind
    min_tokens: int | None
    min_source: str  # where the minimum came from
    step: int = 1  # cached lengths are multiples of this past the minimum (OpenAI: 128)
    ttls: tuple[str, ...] = ("5m",)
    breakpoints: bool = False  # True: only up to a cache_control breakpoint (Anthropic)

    def cached_length(self, prefix: float) -> float:
        """How much of a reusable prefix of ``prefix`` tokens the provider actually caches."""
        if self.min_tokens is None or prefix < self.min_tokens:
            return 0.0
        if self.step > 1:
            return self.min_tokens + self.step * math.floor((prefix - self.min_tokens) / self.step)
        return prefix


def provider_kind(model: str) -> CacheKind:
    bare = model.split("/", 1)[-1].lower()
    head = model.split("/", 1)[0].lower() if "/" in model else ""
    entry = cost_map_entry(model) or {}
    provider = str(entry.get("litellm_provider") or head)
    if provider in ("anthropic", "bedrock", "vertex_ai") and "claude" in bare:
        return "anthropic"
    if provider == "anthropic" or bare.startswith("claude"):
        return "anthropic"
    if provider in ("openai", "azure") or _O200K.search(bare) or bare.startswith("gpt-"):
        return "openai"
    if "gemini" in provider or bare.startswith("gemini"):
        return "gemini"
    return "none"


def _map_minimum(model: str) -> int | None:
    entry = cost_map_entry(model) or {}
    value = entry.get("prompt_cache_min_tokens")
    return None if value is None else int(value)


def cache_model(model: str, profile_minimum: int | None = None) -> CacheModel:
    kind = provider_kind(model)
    bare = model.split("/", 1)[-1].lower()
    minimum: int | None
    if profile_minimum is not None:
        minimum, source = profile_minimum, "the profile's prompt_cache_min_tokens"
    elif (from_map := _map_minimum(model)) is not None:
        minimum, source = from_map, "litellm's cost map (prompt_cache_min_tokens)"
    else:
        minimum, source = None, "no prompt caching known for this provider"
        for provider, pattern, value in MIN_CACHEABLE:
            if provider == kind and pattern.search(bare):
                minimum, source = value, f"{provider} documentation (devloop's table)"
                break
        if minimum is None and kind != "none":
            minimum, source = 1024, f"{kind} default (devloop's table)"
    if kind == "anthropic":
        return CacheModel(kind, minimum, source, ttls=("5m", "1h"), breakpoints=True)
    if kind == "openai":
        return CacheModel(kind, minimum, source, step=OPENAI_STEP)
    if kind == "gemini":
        return CacheModel(kind, minimum, source)
    return CacheModel("none", minimum, source)


# -- tokenizers -----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _encoding(name: str) -> Any:
    use_bundled_tiktoken()
    try:
        import tiktoken

        return tiktoken.get_encoding(name)
    except Exception:  # noqa: BLE001 - the file is not bundled: the caller falls back
        return None


class ModelTokenizer:
    """Counts tokens as ``model`` would: its tiktoken encoding, or cl100k times a margin.

    ``encode`` gives the raw ids (for common-prefix positions); ``scale`` turns a raw count
    into the model's count."""

    def __init__(self, model: str) -> None:
        wanted = "o200k_base" if _O200K.search(model.split("/", 1)[-1].lower()) else "cl100k_base"
        enc = _encoding(wanted)
        self.encoding = wanted
        if enc is None and wanted != "cl100k_base":
            enc, self.encoding = _encoding("cl100k_base"), "cl100k_base"
        if enc is None:
            raise RuntimeError("tiktoken's encodings are unavailable offline: install litellm "
                               "(it bundles the files) or set TIKTOKEN_CACHE_DIR")
        self._enc = enc
        self.margin = CLAUDE_MARGIN if provider_kind(model) == "anthropic" else 1.0
        if self.margin != 1.0:
            self.description = (f"{self.encoding} x {self.margin:.2f} (Claude's tokenizer is not "
                                "available offline; it counts 4-15% more)")
        elif provider_kind(model) == "openai":
            self.description = f"{self.encoding} (the model's own encoding)"
        else:
            self.description = (f"{self.encoding} (an approximation: no offline tokenizer for "
                                "this model)")

    def encode(self, text: str) -> list[int]:
        return list(self._enc.encode(text, disallowed_special=()))

    def scale(self, raw: float) -> float:
        return raw if self.margin == 1.0 else round(raw * self.margin)
