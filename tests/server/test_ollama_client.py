"""Must-show 3: the official `ollama` Python client against devloop's /api."""

from __future__ import annotations

import ollama
import pytest

from tests.helpers import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(default_server: RunningServer) -> ollama.Client:
    return ollama.Client(host=default_server.base_url, timeout=120)


def test_chat(client: ollama.Client) -> None:
    resp = client.chat(model="auto", messages=[{"role": "user", "content": "Say hi."}],
                       options={"num_predict": 12})
    assert resp.done and resp.message.role == "assistant" and resp.message.content.strip()
    assert resp.prompt_eval_count and resp.eval_count


def test_chat_stream(client: ollama.Client) -> None:
    parts = list(client.chat(model="embedded", messages=[{"role": "user", "content": "Hello"}],
                             stream=True, options={"num_predict": 12}))
    assert "".join(p.message.content for p in parts).strip()
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count and parts[-1].prompt_eval_count


def test_generate_with_suffix_is_not_answered_without_it(client: ollama.Client) -> None:
    """The embedded fallback cannot fill in the middle: the suffix is not silently dropped."""
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model="local", prompt="def square(x):\n    return",
                        suffix="\n\nprint(square(3))", options={"num_predict": 8,
                                                                 "temperature": 0})
    assert "suffix" in str(info.value.error)


def test_generate_raw_fim_prompt_is_answered(client: ollama.Client) -> None:
    resp = client.generate(model="local", prompt="def square(x):\n    return", raw=True,
                           options={"num_predict": 8, "temperature": 0})
    assert resp.done and resp.eval_count and resp.response.strip()


def test_generate_stream(client: ollama.Client) -> None:
    parts = list(client.generate(model="embedded", prompt="Once upon a time", stream=True,
                                 options={"num_predict": 10}))
    assert "".join(p.response for p in parts).strip()
    assert parts[-1].done and parts[-1].eval_count


def test_list_show_embed_ps_version(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert {"auto", "local", "embedded"} <= set(names)
    shown = client.show("embedded")
    assert shown.modelinfo["devloop.tier"] == "embedded"
    emb = client.embed(model="embedded", input=["one", "two"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) > 100
    assert any(m.model == "smollm2-135m" for m in client.ps().models)


def test_unknown_model_is_ollama_shaped_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404
    assert "available" in err.value.error and "embedded" in err.value.error
