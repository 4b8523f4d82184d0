"""Issue 21 input 7 and Must-show 7: routing/credential fields are refused on every face and
tier (a loopback listener standing for "elsewhere" receives nothing); the probes clients
send (GET / and HEAD /, models.retrieve, CORS preflight) are answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devloop.security import FORBIDDEN_FIELDS
from tests.helpers import RunningServer, start_server
from tests.team.conftest import add_key
from tests.wire.scripted import Listener, ScriptedUpstream

FACES = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"prompt": "hi"},
    "/v1/embeddings": {"input": "hi"},
    "/api/chat": {"messages": [{"role": "user", "content": "hi"}], "stream": False},
    "/api/generate": {"prompt": "hi", "stream": False},
    "/api/embed": {"input": "hi"},
}
FIELDS = ["api_base", "base_url", "api_key", "custom_llm_provider", "extra_headers",
          "extra_body", "mock_response", "callbacks", "success_callback", "api_version",
          "litellm_params", "aws_secret_access_key", "vertex_credentials", "model_list"]


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def value_for(field: str, url: str) -> object:
    if field in ("extra_headers",):
        return {"Authorization": "Bearer stolen", "Host": url}
    if field in ("extra_body", "litellm_params"):
        return {"api_base": url}
    if field in ("callbacks", "success_callback"):
        return [url]
    if field == "model_list":
        return [{"model_name": "x", "litellm_params": {"api_base": url}}]
    return url


@pytest.mark.parametrize("path", list(FACES))
@pytest.mark.parametrize("model", ["local", "shared", "embedded"])
def test_routing_and_credential_fields_are_refused_everywhere(
        wire_server: RunningServer, scripted: ScriptedUpstream, listener: Listener,
        path: str, model: str) -> None:
    assert set(FIELDS) <= FORBIDDEN_FIELDS
    before = len(scripted.seen)
    for field in FIELDS:
        body = {"model": model, **FACES[path], field: value_for(field, listener.url)}
        resp = httpx.post(wire_server.base_url + path, json=body, timeout=30)
        assert resp.status_code == 400, (field, resp.text)
        err = resp.json()["error"]
        text = err if isinstance(err, str) else err["message"]
        assert field in text
        if not isinstance(err, str):
            assert err["param"] == field
    assert listener.connections == 0
    assert len(scripted.seen) == before  # the real upstream was not called either


def test_root_and_head_answer_like_ollama(wire_server: RunningServer) -> None:
    resp = httpx.get(wire_server.base_url + "/")
    assert (resp.status_code, resp.text) == (200, "Ollama is running")
    assert httpx.head(wire_server.base_url + "/").status_code == 200


def test_models_retrieve_reports_capabilities(wire_server: RunningServer) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url + "/v1", api_key="x", max_retries=0)
    local = client.models.retrieve("local")
    assert local.id == "local"
    caps = local.model_extra["capabilities"]  # type: ignore[index]
    assert caps["tools"] and caps["vision"]  # read from the upstream's /api/show
    assert local.model_extra["context_length"] == 32768  # type: ignore[index]
    embedded = client.models.retrieve("smollm2-135m").model_extra
    assert embedded is not None
    assert embedded["capabilities"]["tools"] is False
    assert embedded["capabilities"]["json_schema"] is True
    assert client.models.retrieve("shared").model_extra["context_length"] == 32768  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_api_show_reports_capabilities_truthfully(wire_server: RunningServer) -> None:
    show = httpx.post(wire_server.base_url + "/api/show", json={"model": "embedded"}).json()
    assert "tools" not in show["capabilities"] and "vision" not in show["capabilities"]
    show = httpx.post(wire_server.base_url + "/api/show", json={"model": "local"}).json()
    assert {"tools", "vision"} <= set(show["capabilities"])


PREFLIGHT = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,authorization"}


def test_cors_preflight_localhost_allowed_others_not(wire_server: RunningServer) -> None:
    url = wire_server.base_url + "/v1/chat/completions"
    resp = httpx.options(url, headers=PREFLIGHT)
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "http://localhost:5173"
    resp = httpx.options(url, headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in resp.headers


def test_cors_on_the_call_itself_only_for_browsers(wire_server: RunningServer) -> None:
    """A browser's POST (it sends Origin) gets the allow header; an SDK's POST (no Origin)
    skips CORS entirely; a cacheable GET says it varies by Origin."""
    url = wire_server.base_url + "/v1/embeddings"
    body = {"model": "embedded", "input": "hi"}
    browser = httpx.post(url, json=body, headers={"Origin": "http://localhost:5173"})
    assert browser.headers["access-control-allow-origin"] == "http://localhost:5173"
    evil = httpx.post(url, json=body, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    sdk = httpx.post(url, json=body)
    assert sdk.status_code == 200 and "access-control-allow-origin" not in sdk.headers
    listing = httpx.get(wire_server.base_url + "/v1/models")
    assert "Origin" in listing.headers["vary"]


def test_cors_preflight_needs_no_key_in_team_mode(tmp_path: Path, embedded_profile: Path
                                                  ) -> None:
    add_key(tmp_path / "home", "alice")  # team mode starts only with a key
    server = start_server(embedded_profile, tmp_path / "home", args=("--team",),
                          env={"DEVLOOP_CORS_ORIGINS": '["http://app.internal:*"]'})
    try:
        resp = httpx.options(server.base_url + "/v1/chat/completions",
                             headers={**PREFLIGHT, "Origin": "http://app.internal:3000"})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "http://app.internal:3000"
        resp = httpx.post(server.base_url + "/v1/chat/completions", json={})
        assert resp.status_code == 401  # the call itself still needs a key
        assert httpx.get(server.base_url + "/").text == "Ollama is running"  # liveness
    finally:
        server.stop()


def test_dimensions_honoured_or_refused(wire_server: RunningServer) -> None:
    resp = httpx.post(wire_server.base_url + "/v1/embeddings", timeout=60,
                      json={"model": "embedded", "input": "hi"})
    size = len(resp.json()["data"][0]["embedding"])
    resp = httpx.post(wire_server.base_url + "/v1/embeddings", timeout=60,
                      json={"model": "embedded", "input": "hi", "dimensions": size})
    assert resp.status_code == 200
    resp = httpx.post(wire_server.base_url + "/v1/embeddings", timeout=60,
                      json={"model": "embedded", "input": "hi", "dimensions": 8})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "dimensions"


def test_legacy_api_embeddings_with_prompt(wire_server: RunningServer) -> None:
    resp = httpx.post(wire_server.base_url + "/api/embeddings", timeout=60,
                      json={"model": "embedded", "prompt": "hello"})
    assert resp.status_code == 200
    assert len(resp.json()["embedding"]) > 8
