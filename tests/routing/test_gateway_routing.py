"""Routing inside the gateway, in process on the embedded tier: per-route output limits and
the local model's simple/complex verdict (`classifier: model`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devloop.config import Profile, Settings
from devloop.gateway import Gateway
from devloop.routing.classifier import needs_model_verdict, parse_verdict
from devloop.types import ChatRequest, CompletionRequest, RequestContext

BASE: dict[str, Any] = {
    "name": "routing",
    "production_model": "anthropic/claude-sonnet-4-5",
    "tiers": {"local": {"backend": "embedded", "model": "smollm2-135m"},
              "embedded": {"backend": "embedded", "model": "smollm2-tiny-alias",
                           "models": ["smollm2-135m-b"]}},
    "cache": {"enabled": False},
}


async def make(tmp_path: Path, **extra: Any) -> Gateway:
    gw = Gateway(Settings(home=tmp_path / "home"), Profile.model_validate({**BASE, **extra}))
    await gw.start(probe=False)
    return gw


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await make(tmp_path, routes=[
        {"match": {"endpoint": "completions"}, "tier": "local", "max_tokens": 4,
         "default_max_tokens": 2},
        {"tier": "local", "max_tokens": 6, "default_max_tokens": 3}])
    yield gw
    await gw.close()


def ctx(endpoint: str = "chat", **kw: Any) -> RequestContext:
    return RequestContext(uuid.uuid4().hex, endpoint, "openai", **kw)  # type: ignore[arg-type]


def chat(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "auto", "temperature": 0.0,
                                       "messages": [{"role": "user", "content": text}], **kw})


@pytest.mark.slow
async def test_route_caps_and_defaults_output(capped: Gateway) -> None:
    story = "Write a long story about a dragon who learns to bake bread."
    capped_call = await capped.call(chat(story, max_tokens=500), ctx())
    assert capped_call.completion is not None
    assert capped_call.completion.usage.completion_tokens <= 6
    defaulted = await capped.call(chat(story), ctx())
    assert defaulted.completion is not None
    assert defaulted.completion.usage.completion_tokens <= 3
    small = capped.prepare(chat(story, max_tokens=2), ctx())
    assert small.req.token_limit() == 2  # a smaller request limit is kept
    big = capped.prepare(chat(story, max_completion_tokens=100), ctx())
    assert big.req.token_limit() == 6 and big.req.max_completion_tokens == 6
    fim = capped.prepare(CompletionRequest(model="auto", prompt="def add(a, b):"),
                         ctx("completions"))
    assert fim.req.token_limit() == 2
    done = await capped.call(CompletionRequest(model="auto", prompt="def add(a, b):",
                                               max_tokens=64), ctx("completions"))
    assert done.completion is not None and done.completion.usage.completion_tokens <= 4


@pytest.mark.parametrize(("text", "level"), [
    ("simple", "low"), ("Complex.", "high"), (" complex\n", "high"), ("SIMPLE!", "low"),
    ("It is hard.", "high"), ("trivial", "low"), ("banana", None), ("", None),
])
def test_parse_verdict(text: str, level: str | None) -> None:
    assert parse_verdict(text) == level


def test_verdict_only_when_routing_needs_it() -> None:
    routes = [{"match": {"complexity": "high"}, "tier": "embedded"}, {"tier": "local"}]
    model_cls = Profile.model_validate({**BASE, "routes": routes, "classifier": "model"})
    heuristic = Profile.model_validate({**BASE, "routes": routes})
    no_complexity = Profile.model_validate({**BASE, "classifier": "model"})
    assert needs_model_verdict(model_cls, "auto", None)
    assert not needs_model_verdict(model_cls, "local", None)  # a named tier is not routed
    assert not needs_model_verdict(model_cls, "auto", "local")  # nor a forced one
    assert not needs_model_verdict(model_cls, "no-such-model", None)
    assert not needs_model_verdict(heuristic, "auto", None)
    assert not needs_model_verdict(no_complexity, "auto", None)


@pytest.mark.slow
async def test_model_classifier_routes_on_the_local_verdict(tmp_path: Path) -> None:
    gw = await make(tmp_path, classifier="model", routes=[
        {"match": {"complexity": "high"}, "tier": "embedded"},
        {"match": {"complexity": "low"}, "tier": "local"}])
    try:
        prompt = "Refactor the payment module across app/pay.py, app/db.py and app/api.py."
        verdict = await gw.classifier.complexity(prompt)
        assert verdict in ("low", "high", None)
        assert gw.classifier.calls == 1
        result = await gw.call(chat(prompt, max_tokens=2), ctx())
        assert gw.classifier.calls == 1  # one verdict per prompt, remembered
        if verdict is None:  # the model said neither word: the heuristics decided
            assert "local model verdict" not in result.reason
        else:
            assert f"[complexity {verdict}: local model verdict]" in result.reason
            assert result.tier == ("embedded" if verdict == "high" else "local")
        named = await gw.call(chat("hi", max_tokens=2, model="local"), ctx())
        assert named.tier == "local" and gw.classifier.calls == 1  # no verdict needed
    finally:
        await gw.close()
