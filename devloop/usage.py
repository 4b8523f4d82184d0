"""Reading a provider's usage report into ``Usage``, whatever shape it comes in.

Shapes understood (dicts or attribute objects such as litellm's ``Usage``):

- OpenAI: ``prompt_tokens`` (all input), ``prompt_tokens_details.cached_tokens`` (cache
  reads), ``completion_tokens_details.reasoning_tokens``;
- litellm's normalised Anthropic usage: the above, plus ``cache_creation_input_tokens``
  (or ``prompt_tokens_details.cache_creation_tokens`` / ``cache_write_tokens``) and
  ``prompt_tokens_details.cache_creation_token_details.ephemeral_5m_input_tokens`` /
  ``ephemeral_1h_input_tokens``;
- Anthropic's own: ``input_tokens`` (uncached input only), ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``, ``cache_creation.ephemeral_{5m,1h}_input_tokens``,
  ``output_tokens``;
- OpenAI Responses: ``input_tokens`` (all input), ``input_tokens_details.cached_tokens``,
  ``output_tokens``, ``output_tokens_details.reasoning_tokens`` (told from Anthropic's by
  the details objects or ``total_tokens``, which Anthropic never sends).
"""

from __future__ import annotations

from typing import Any

from devloop.types import CacheTTL, Usage

# An OpenAI-compatible server's usage with no details (vLLM, Ollama, llama.cpp): read as is.
PLAIN_OPENAI = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def usage_from(data: Any) -> Usage | None:
    """A ``Usage`` from any of the shapes above; None when ``data`` holds no usage."""
    if not data:
        return None
    if type(data) is dict and data.keys() <= PLAIN_OPENAI and "prompt_tokens" in data:
        return Usage(_int(data["prompt_tokens"]), _int(data.get("completion_tokens")))
    responses = _get(data, "prompt_tokens") is None and any(
        _get(data, k) is not None
        for k in ("input_tokens_details", "output_tokens_details", "total_tokens"))
    details = _get(data, "input_tokens_details" if responses else "prompt_tokens_details")
    out_details = _get(data, "output_tokens_details" if responses else "completion_tokens_details")
    read = _int(_get(details, "cached_tokens")) or _int(_get(data, "cache_read_input_tokens"))
    write = (_int(_get(data, "cache_creation_input_tokens"))
             or _int(_get(details, "cache_creation_tokens"))
             or _int(_get(details, "cache_write_tokens")))
    split = _get(details, "cache_creation_token_details") or _get(data, "cache_creation")
    five, hour = (_int(_get(split, "ephemeral_5m_input_tokens")),
                  _int(_get(split, "ephemeral_1h_input_tokens")))
    write = write or five + hour
    if _get(data, "prompt_tokens") is not None:
        prompt = _int(_get(data, "prompt_tokens"))
        completion = _int(_get(data, "completion_tokens"))
    elif responses:  # input_tokens includes the cache reads here
        prompt = _int(_get(data, "input_tokens"))
        completion = _int(_get(data, "output_tokens"))
    else:  # Anthropic's own shape: input_tokens excludes the cache reads and writes
        prompt = _int(_get(data, "input_tokens")) + read + write
        completion = _int(_get(data, "output_tokens"))
    ttl: CacheTTL | None = ("1h" if hour else "5m") if write else None
    return Usage(
        prompt, completion, min(read, prompt),
        cache_write_tokens=min(write, max(prompt - read, 0)),
        cache_write_ttl=ttl,
        cache_write_1h_tokens=min(hour, write),
        reasoning_tokens=min(_int(_get(out_details, "reasoning_tokens")), completion),
    )


def anthropic_usage(u: Usage) -> dict[str, Any]:
    """``u`` in Anthropic's Messages shape (what a loopback Anthropic upstream sends)."""
    out: dict[str, Any] = {
        "input_tokens": u.uncached_prompt_tokens,
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }
    if u.cache_write_tokens:
        hour = u.cache_write_1h_tokens or (u.cache_write_tokens if u.cache_write_ttl == "1h"
                                           else 0)
        out["cache_creation"] = {"ephemeral_5m_input_tokens": u.cache_write_tokens - hour,
                                 "ephemeral_1h_input_tokens": hour}
    return out
