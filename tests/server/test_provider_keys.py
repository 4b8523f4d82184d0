"""A provider key missing from devloop's environment, or refused by the provider, is a 401
``authentication_error`` on every face (the status LiteLLM proxy gives a provider's
AuthenticationError), in the face's own error shape, naming the environment variable and
never its value; the SDKs do not retry it (a 503 ``overloaded_error`` made them retry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from aiohttp import web

from tests.agents.upstream import ScriptedUpstream
from tests.helpers import RunningServer, start_server

PROFILE = """
name: keys-test
production_model: anthropic/claude-sonnet-4-6
tiers:
  frontier: {{backend: litellm, model: anthropic/claude-sonnet-4-6{frontier_base}}}
  shared:   {{backend: litellm, model: openai/gpt-4o-mini{shared_base}}}
aliases:
  "gpt-*": shared
routes:
  - {{tier: frontier}}
fallbacks: []
cache: {{enabled: false}}
"""
ANTHROPIC_SECRET = "sk-ant-secret-value-0001"
OPENAI_SECRET = "sk-openai-secret-value-0002"
SDK_RETRIES = 3  # the SDKs would try 4 times in all if the error invited a retry
MESSAGE = [{"role": "user", "content": "hi"}]


class RejectingUpstream(ScriptedUpstream):
    """A provider that refuses every key (quoting part of it, as OpenAI does); it records
    each attempt, so a retry by anyone would show."""

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.json_response({"type": "error", "error": {
            "type": "authentication_error", "message": "invalid x-api-key"}}, status=401)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        key = request.headers.get("Authorization", "")[-12:]
        return web.json_response({"error": {
            "message": f"Incorrect API key provided: {key}", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key"}}, status=401)

    _responses = _chat


def _server(folder: Path, env: dict[str, str], frontier_base: str = "",
            shared_base: str = "") -> RunningServer:
    profile = folder / "keys-test.yaml"
    profile.write_text(PROFILE.format(frontier_base=frontier_base, shared_base=shared_base))
    return start_server(profile, folder / "home", env=env)


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = _server(tmp_path_factory.mktemp("keyless"),
                     {"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": "", "OPENAI_API_KEY": ""})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rejecting() -> Iterator[RejectingUpstream]:
    with RejectingUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory,
            rejecting: RejectingUpstream) -> Iterator[RunningServer]:
    server = _server(tmp_path_factory.mktemp("refused"),
                     {"ANTHROPIC_API_KEY": ANTHROPIC_SECRET, "OPENAI_API_KEY": OPENAI_SECRET},
                     frontier_base=f', api_base: "{rejecting.url}"',
                     shared_base=f', api_base: "{rejecting.url}/v1"')
    yield server
    server.stop()


def counting(sdk: Any, attempts: list[str]) -> Any:
    """The SDK's own HTTP client, recording each request the SDK sends."""
    return sdk.DefaultHttpxClient(timeout=60, event_hooks={
        "request": [lambda request: attempts.append(request.url.path)]})


def anthropic_client(server: RunningServer, attempts: list[str]) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="devloop",
                               max_retries=SDK_RETRIES, http_client=counting(anthropic, attempts))


def openai_client(server: RunningServer, attempts: list[str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="devloop",
                         max_retries=SDK_RETRIES, http_client=counting(openai, attempts))


def no_secret(server: RunningServer, text: str) -> None:
    for secret in (ANTHROPIC_SECRET, OPENAI_SECRET):
        assert secret[-12:] not in text
        assert secret[-12:] not in server.output()


# -- missing keys: refused before any upstream is called -----------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_messages_without_anthropic_key_is_401_not_retried(keyless: RunningServer,
                                                           stream: bool) -> None:
    attempts: list[str] = []
    client = anthropic_client(keyless, attempts)
    with pytest.raises(anthropic.AuthenticationError) as info:
        if stream:
            with client.messages.stream(model="frontier", max_tokens=8, messages=MESSAGE) as s:
                list(s)
        else:
            client.messages.create(model="frontier", max_tokens=8, messages=MESSAGE)
    assert info.value.status_code == 401
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert "ANTHROPIC_API_KEY" in info.value.body["error"]["message"]  # type: ignore[index]
    assert attempts == ["/v1/messages"]


def test_chat_without_anthropic_key_is_401_not_retried(keyless: RunningServer) -> None:
    attempts: list[str] = []
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(keyless, attempts).chat.completions.create(model="frontier",
                                                                 messages=MESSAGE)
    assert info.value.status_code == 401
    assert info.value.type == "authentication_error" and info.value.code == "missing_provider_key"
    assert "ANTHROPIC_API_KEY" in info.value.message
    assert attempts == ["/v1/chat/completions"]


def test_responses_without_openai_key_is_401_not_retried(keyless: RunningServer) -> None:
    attempts: list[str] = []
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(keyless, attempts).responses.create(model="gpt-4o-mini", input="hi")
    assert info.value.status_code == 401
    assert info.value.type == "authentication_error" and info.value.code == "missing_provider_key"
    assert "OPENAI_API_KEY" in info.value.message
    assert attempts == ["/v1/responses"]


def test_ollama_chat_without_key_is_401_in_ollama_shape(keyless: RunningServer) -> None:
    client = ollama.Client(host=keyless.base_url, timeout=60)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="gpt-4o-mini", messages=MESSAGE)
    assert info.value.status_code == 401
    assert "OPENAI_API_KEY" in info.value.error
    raw = httpx.post(keyless.base_url + "/api/generate", timeout=60,
                     json={"model": "frontier", "prompt": "hi", "stream": False})
    assert raw.status_code == 401 and set(raw.json()) == {"error"}
    assert "ANTHROPIC_API_KEY" in raw.json()["error"]


# -- keys the provider refuses: one upstream attempt, the key never repeated ---------------
def test_refused_key_on_messages_is_401_with_one_upstream_attempt(
        refused: RunningServer, rejecting: RejectingUpstream) -> None:
    before, attempts = len(rejecting.bodies("/v1/messages")), []
    with pytest.raises(anthropic.AuthenticationError) as info:
        anthropic_client(refused, attempts).messages.create(model="frontier", max_tokens=8,
                                                            messages=MESSAGE)
    error = info.value.body["error"]  # type: ignore[index]
    assert info.value.status_code == 401 and error["type"] == "authentication_error"
    assert "ANTHROPIC_API_KEY" in error["message"]
    assert attempts == ["/v1/messages"]
    assert len(rejecting.bodies("/v1/messages")) == before + 1
    no_secret(refused, error["message"])


@pytest.mark.parametrize(("model", "env", "upstream_path"), [
    ("frontier", "ANTHROPIC_API_KEY", "/v1/messages"),  # litellm's Anthropic client
    ("gpt-4o-mini", "OPENAI_API_KEY", "/v1/chat/completions"),  # litellm's OpenAI client
])
def test_refused_key_through_litellm_is_401_with_one_upstream_attempt(
        refused: RunningServer, rejecting: RejectingUpstream, model: str, env: str,
        upstream_path: str) -> None:
    before, attempts = len(rejecting.bodies(upstream_path)), []
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(refused, attempts).chat.completions.create(model=model, messages=MESSAGE)
    assert info.value.status_code == 401
    assert info.value.type == "authentication_error" and info.value.code == "invalid_provider_key"
    assert env in info.value.message
    assert attempts == ["/v1/chat/completions"]
    assert len(rejecting.bodies(upstream_path)) == before + 1
    no_secret(refused, info.value.message)
    assert "LiteLLM completion()" not in refused.output()  # litellm's INFO line is silenced


def test_refused_key_on_responses_is_401(refused: RunningServer) -> None:
    attempts: list[str] = []
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(refused, attempts).responses.create(model="gpt-4o-mini", input="hi")
    assert info.value.status_code == 401 and info.value.code == "invalid_provider_key"
    assert "OPENAI_API_KEY" in info.value.message
    assert attempts == ["/v1/responses"]
    no_secret(refused, info.value.message)
