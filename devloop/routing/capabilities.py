"""Capability routing, pure: what a request needs, which tiers can honour it, and where it goes.

Every field a client sends is honoured or refused: a request that needs tools, images, a
JSON schema, logprobs, ``n > 1``, fill-in-the-middle, an Ollama-only field or a long context
goes to a tier that declares it can, among the chosen tier and the fallbacks the profile
allows (frontier never by accident); when none can, ``CapabilityError`` names the field and
the tier (a 400 ``invalid_request_error`` with ``param``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devloop.types import (
    Capabilities,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    RouteDecision,
)

# Ollama options devloop maps to OpenAI fields itself (every tier honours those).
MAPPED_OPTIONS = frozenset({"temperature", "top_p", "seed", "num_predict", "stop",
                            "presence_penalty", "frequency_penalty"})
# Extra OpenAI fields that do not change the answer: accepted by every tier.
HARMLESS_EXTRAS = frozenset({"metadata", "store", "service_tier", "prompt_cache_key",
                             "safety_identifier"})
# Ollama request fields with no equivalent elsewhere: honoured on an Ollama tier only.
NATIVE_ONLY = ("think", "context", "template", "images", "format", "system")
WHAT = {"tools": "tool calling", "vision": "image input", "json_object": "JSON mode",
        "json_schema": "JSON-schema output", "fim": "fill-in-the-middle (suffix)",
        "logprobs": "logprobs", "n": "several choices (n > 1)", "context": "a prompt this long",
        "native": "this Ollama field", "option": "this Ollama option",
        "parallel_tool_calls": "parallel tool calls", "embeddings": "embeddings",
        "passthrough": "this field (only an OpenAI-compatible upstream takes it as it is)",
        "echo": "echo"}


class CapabilityError(ValueError):
    """No allowed tier can honour a field: a 400 naming ``param`` and the tier."""

    def __init__(self, message: str, param: str, code: str = "unsupported_parameter") -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(slots=True, frozen=True)
class Need:
    capability: str  # a Capabilities field, or "option", "native", "context"
    param: str  # the request field, as the client wrote it
    value: Any = None  # n for "n", the option's name, the prompt's tokens for "context"
    # Served without when no allowed tier can honour it: tools the model may choose not to
    # call (tool_choice auto or unset), so a text answer keeps the request's meaning.
    optional: bool = False


def _image_params(req: ChatRequest) -> list[str]:
    out = []
    for i, m in enumerate(req.messages):
        if isinstance(m.content, list):
            for j, part in enumerate(m.content):
                if isinstance(part, dict) and part.get("type") in ("image_url", "image"):
                    out.append(f"messages[{i}].content[{j}]")
    return out


def needs(req: ChatRequest | CompletionRequest | EmbeddingRequest,
          prompt_tokens: int = 0) -> list[Need]:
    """What the request asks of the tier that serves it."""
    if isinstance(req, EmbeddingRequest):
        return [Need("embeddings", "input")]
    out: list[Need] = []
    if isinstance(req, ChatRequest):
        if req.tools and req.tool_choice != "none":
            optional = req.tool_choice in (None, "auto")
            out.append(Need("tools", "tools", optional=optional))
            if req.parallel_tool_calls:
                out.append(Need("parallel_tool_calls", "parallel_tool_calls", optional=optional))
        elif req.tool_choice not in (None, "none", "auto"):
            raise CapabilityError("tool_choice: requires tools", "tool_choice", "invalid_value")
        out.extend(Need("vision", p) for p in _image_params(req)[:1])
        kind = (req.response_format or {}).get("type")
        if kind in ("json_object", "json_schema"):
            out.append(Need(kind, "response_format"))
        elif kind not in (None, "text"):
            raise CapabilityError(f"response_format.type: {kind!r} is not one of text, "
                                  f"json_object, json_schema", "response_format.type",
                                  "invalid_value")
        if req.logprobs or req.top_logprobs:
            out.append(Need("logprobs", "logprobs" if req.logprobs else "top_logprobs"))
    else:
        if req.suffix:
            out.append(Need("fim", "suffix"))
        if req.echo:
            out.append(Need("echo", "echo"))
        if req.logprobs:
            out.append(Need("logprobs", "logprobs"))
    if req.n and req.n > 1:
        if req.stream:
            raise CapabilityError("n: several choices cannot be streamed through devloop; "
                                  "send stream: false or n: 1", "n")
        out.append(Need("n", "n", req.n))
    for name in req.model_extra or {}:
        if name not in HARMLESS_EXTRAS:
            out.append(Need("passthrough", name))
    native = req.native or {}
    for name in NATIVE_ONLY:
        if native.get(name):
            out.append(Need("native", name))
    for name in (native.get("options") or {}):
        if name not in MAPPED_OPTIONS:
            out.append(Need("option", f"options.{name}", name))
    if prompt_tokens:
        out.append(Need("context", "messages" if isinstance(req, ChatRequest) else "prompt",
                        prompt_tokens))
    return out


def honours(caps: Capabilities, need: Need) -> bool:
    if need.capability == "n":
        return caps.max_n >= int(need.value)
    if need.capability == "context":
        return caps.context_length is None or need.value <= caps.context_length
    if need.capability == "native":
        return caps.ollama_native
    if need.capability == "option":
        return caps.ollama_native or need.value in caps.options
    return bool(getattr(caps, need.capability, False))


def describe(caps: Capabilities, need: Need) -> str:
    if need.capability == "n":
        return f"n={need.value} (it serves at most {caps.max_n})"
    if need.capability == "context":
        return f"a prompt of about {need.value} tokens (its context is {caps.context_length})"
    return f"{WHAT.get(need.capability, need.capability)} ({need.param})"


def route_capable(decision: RouteDecision, wanted: list[Need],
                  caps_of: Callable[[str], Capabilities],
                  model_of: Callable[[str], str]) -> RouteDecision:
    """The decision, moved to a capable tier when the chosen one lacks something; its
    fallback chain keeps only capable tiers (a fallback never answers without a field).

    Optional needs (tools under tool_choice auto) go the same way while some allowed tier
    can honour them; when none can, the call is served without them and says so in
    ``decision.ignored`` and the reason, rather than refused: a model offered tools may
    always answer in text. Required ones raise ``CapabilityError``.
    """
    try:
        return _route_capable(decision, wanted, caps_of, model_of)
    except CapabilityError:
        optional = [n for n in wanted if n.optional]
        if not optional:
            raise
    routed = _route_capable(decision, [n for n in wanted if not n.optional], caps_of, model_of)
    names = [n.param for n in optional]
    return dataclasses.replace(
        routed, ignored=names,
        reason=f"{routed.reason}; {', '.join(names)} not offered to the model: no allowed tier "
               f"can call tools (tool_choice auto), answered as text")


def _route_capable(decision: RouteDecision, wanted: list[Need],
                   caps_of: Callable[[str], Capabilities],
                   model_of: Callable[[str], str]) -> RouteDecision:
    if not wanted:
        return decision
    chain = [t for t in decision.fallback_chain
             if all(honours(caps_of(t), n) for n in wanted)]
    missing = [n for n in wanted if not honours(caps_of(decision.tier), n)]
    if not missing and len(chain) == len(decision.fallback_chain):
        return decision  # every tier honours every field: the common case, unchanged
    # Fallbacks that lack only optional needs stay last in the chain: if every capable tier
    # fails, they answer as text (the gateway strips the tools for them and says so).
    text_only = [t for t in decision.fallback_chain if t not in chain and all(
        honours(caps_of(t), n) for n in wanted if not n.optional)]
    dropped = [t for t in decision.fallback_chain if t not in chain and t not in text_only]
    skipped = "; ".join(
        f"fallback {t} skipped: it cannot honour "
        + ", ".join(describe(caps_of(t), n) for n in wanted if not honours(caps_of(t), n))
        for t in dropped)
    if not missing:
        return dataclasses.replace(decision, fallback_chain=chain + text_only, skipped=skipped,
                                   text_only=text_only)
    lacks = "; ".join(describe(caps_of(decision.tier), n) for n in missing)
    if chain:
        tier = chain[0]
        return dataclasses.replace(
            decision, tier=tier, model=model_of(tier), fallback_chain=chain[1:] + text_only,
            text_only=text_only,
            reason=f"{decision.reason}; {decision.tier} lacks {lacks} -> {tier}",
            skipped=skipped)
    first = missing[0]
    code = "context_length_exceeded" if first.capability == "context" else "unsupported_parameter"
    allowed = ", ".join(decision.fallback_chain) or "none"
    raise CapabilityError(
        f"{first.param}: tier {decision.tier} ({decision.model}) cannot honour {lacks}, and no "
        f"fallback the profile allows for it can (fallbacks: {allowed})", first.param, code)
