"""Must-show 1 and 2: the bundled default profile on a fresh machine (no Ollama, no keys),
driven by the official `openai` SDK against a real `devloop serve` subprocess."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.helpers import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(default_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_server.base_url + "/v1", api_key="unused",
                         max_retries=0, timeout=120)


def test_chat_answers_from_embedded_model_when_ollama_is_absent(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello in one word."}],
        max_tokens=16)
    resp = raw.parse()
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.strip()
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert raw.headers["x-devloop-tier"] == "embedded"
    assert raw.headers["x-devloop-model"] == "smollm2-135m"
    reason = raw.headers["x-devloop-route-reason"]
    assert "local" in reason and "served by embedded" in reason
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-devloop-saved-usd"]) > 0  # priced at the production model


def test_chat_stream_reports_usage_in_final_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="embedded", messages=[{"role": "user", "content": "Count from 1 to 5."}],
        max_tokens=24, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0


def test_stream_without_usage_option_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="embedded", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
        stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_completions_with_suffix_is_not_answered_without_it(client: openai.OpenAI) -> None:
    """No Ollama: the embedded SmolLM2 has no fill-in-the-middle tokens, so a `suffix` is not
    silently dropped: the call fails and says why the embedded fallback was not used."""
    with pytest.raises(openai.APIStatusError) as info:
        client.completions.create(
            model="local", prompt="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n",
            max_tokens=16, temperature=0)
    assert info.value.status_code == 503
    assert "fallback embedded skipped" in str(info.value) and "suffix" in str(info.value)


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(
        model="embedded", prompt="The capital of France is", max_tokens=8, stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_embeddings_float_and_base64(client: openai.OpenAI, default_server: RunningServer) -> None:
    resp = client.embeddings.create(model="embedded", input=["hello world", "goodbye"])
    assert [d.index for d in resp.data] == [0, 1]
    assert len(resp.data[0].embedding) == len(resp.data[1].embedding) > 100
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens > 0
    raw = httpx.post(default_server.base_url + "/v1/embeddings", timeout=60,
                     json={"model": "embedded", "input": "hello world", "encoding_format": "float"})
    assert raw.json()["data"][0]["embedding"] == pytest.approx(resp.data[0].embedding, abs=1e-5)


def test_models_lists_tiers_aliases_and_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    for name in ("auto", "local", "embedded", "shared", "frontier", "smollm2-135m"):
        assert name in ids


def test_health_and_metrics(default_server: RunningServer, client: openai.OpenAI) -> None:
    health = httpx.get(default_server.base_url + "/health").json()
    assert health["status"] == "ok" and "embedded" in health["tiers"]
    metrics = httpx.get(default_server.base_url + "/metrics").text
    assert "devloop_requests_total" in metrics
