"""Provider prompt caching on by default where the provider needs markers, and the
explicit output limit every paid call leaves with. Pure functions over ``ChatRequest``.

Anthropic caches only up to ``cache_control`` breakpoints the request marks (OpenAI and
Gemini cache long prefixes on their own). With ``prompt_caching: auto`` (the default), an
Anthropic-family call whose client marked no breakpoint gets one at the end of its static
prefix (tools, then system prompt: the order Anthropic hashes them in) when that prefix
is over the provider's minimum cacheable length. A client that marks its own (Claude
Code does) is left exactly as it came. litellm carries ``cache_control`` on OpenAI-shaped
content parts and tools through to Anthropic's Messages API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from devloop.types import ChatRequest, Message

EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}
ANTHROPIC_MIN_CACHEABLE = 1024  # Sonnet/Opus; Haiku models need more (the map says)
_ANTHROPIC_PREFIXES = ("anthropic/", "claude", "bedrock/anthropic.", "bedrock/us.anthropic.",
                       "vertex_ai/claude")


def needs_markers(model: str) -> bool:
    """Providers that cache only at explicit ``cache_control`` breakpoints (Anthropic)."""
    name = model.lower()
    return name.startswith(_ANTHROPIC_PREFIXES) or "/claude" in name


def _parts_marked(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and "cache_control" in p for p in content)


def has_markers(req: ChatRequest) -> bool:
    """Whether the client placed any cache_control breakpoint itself."""
    if any(isinstance(t, dict) and "cache_control" in t for t in req.tools or ()):
        return True
    return any(_parts_marked(m.content) or "cache_control" in (m.model_extra or {})
               for m in req.messages)


def marked_ttls(req: ChatRequest) -> set[str]:
    """The TTLs of the client's own breakpoints ("5m" when a marker names none)."""
    marks = [t.get("cache_control") for t in req.tools or () if isinstance(t, dict)]
    for m in req.messages:
        if isinstance(m.content, list):
            marks.extend(p.get("cache_control") for p in m.content if isinstance(p, dict))
        marks.append((m.model_extra or {}).get("cache_control"))
    return {str(c.get("ttl") or "5m") for c in marks if isinstance(c, dict)}


def static_prefix_text(req: ChatRequest) -> str:
    """Tools and the leading system messages: what stays the same call after call."""
    tools = json.dumps(req.tools, sort_keys=True) if req.tools else ""
    system = [m.text() for m in _leading_system(req)]
    return "\n".join([tools, *system])


def _leading_system(req: ChatRequest) -> list[Message]:
    out = []
    for m in req.messages:
        if m.role not in ("system", "developer"):
            break
        out.append(m)
    return out


def _marked(message: Message) -> Message:
    """``message`` with a breakpoint on its last text part (a string becomes one part)."""
    content = message.content
    if isinstance(content, str) or content is None:
        parts: list[dict[str, Any]] = [{"type": "text", "text": content or ""}]
    else:
        parts = [dict(p) for p in content]
    for part in reversed(parts):
        if part.get("type") == "text":
            part["cache_control"] = dict(EPHEMERAL)
            break
    else:
        return message
    return message.model_copy(update={"content": parts})


def add_cache_breakpoints(req: ChatRequest, model: str, count_tokens: Callable[[str], int],
                          min_tokens: int | None = None) -> ChatRequest:
    """``req`` with a cache_control breakpoint closing its static prefix, when the model's
    provider needs markers, the client set none, and the prefix is long enough to cache.
    Otherwise ``req`` itself, unchanged."""
    if not needs_markers(model) or has_markers(req):
        return req
    minimum = min_tokens or ANTHROPIC_MIN_CACHEABLE
    system = _leading_system(req)
    if not system and not req.tools:
        return req
    if count_tokens(static_prefix_text(req)) < minimum:
        return req
    if system:  # one breakpoint after the system prompt caches tools + system
        last = len(system) - 1
        messages = [_marked(m) if i == last else m for i, m in enumerate(req.messages)]
        return req.model_copy(update={"messages": messages})
    tools = [dict(t) for t in req.tools or ()]
    tools[-1]["cache_control"] = dict(EPHEMERAL)
    return req.model_copy(update={"tools": tools})


# -- the explicit output limit -----------------------------------------------------------------

def thinking_budget(req: ChatRequest) -> int:
    """Tokens the client allowed for extended thinking (Anthropic ``thinking.budget_tokens``,
    sent as an extra field), 0 when none."""
    thinking = (req.model_extra or {}).get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        try:
            return max(int(thinking.get("budget_tokens") or 0), 0)
        except (TypeError, ValueError):
            return 0
    return 0


def output_limit(client_limit: int | None, route_default: int | None, route_cap: int | None,
                 profile_default: int, thinking: int = 0) -> int:
    """The one number a paid call is sent with and reserved against: the client's limit,
    else the route's default, else the profile's; capped by the route; and, when the
    limit is devloop's own choice, raised above a thinking budget (Anthropic requires
    max_tokens > budget_tokens, and thinking tokens are billed as output)."""
    limit = client_limit if client_limit is not None else (route_default or profile_default)
    if client_limit is None and thinking and limit <= thinking:
        limit = thinking + (route_default or profile_default)
    if route_cap is not None:
        limit = min(limit, route_cap)
    return limit
