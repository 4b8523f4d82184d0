"""devloop's OpenAI Files + Batch API, driven by the official openai SDK against a real server."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.evals.conftest import ledger_rows
from tests.helpers import RunningServer, start_server, write_profile


@pytest.fixture
def client(eval_server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=eval_server.base_url + "/v1", api_key="unused",
                         max_retries=0)


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "embedded", "max_tokens": 8,
                     "messages": [{"role": "user", "content": text}], **body}}


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)


def read_lines(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.files.content(file_id).content.splitlines() if x]


def test_upload_run_and_read_a_batch(client: openai.OpenAI, eval_server: RunningServer) -> None:
    data = jsonl([chat_line("one", "Say one"), chat_line("two", "Say two"),
                  chat_line("bad", "x", temperature=9)])  # temperature out of range: 400
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    assert client.files.retrieve(uploaded.id).filename == "requests.jsonl"
    assert client.files.content(uploaded.id).content == data
    before = ledger_rows(eval_server)
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"job": "t1"})
    assert batch.status in ("validating", "in_progress") and batch.metadata == {"job": "t1"}
    batch = wait(client, batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed,
            batch.request_counts.failed) == (3, 2, 1)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    out = read_lines(client, batch.output_file_id)
    assert [line["custom_id"] for line in out] == ["one", "two"]  # input order
    for line in out:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] > 0
    errors = read_lines(client, batch.error_file_id)
    assert [e["custom_id"] for e in errors] == ["bad"]
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert ledger_rows(eval_server) == before + 2  # each line went through the gateway
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    listed = client.batches.list(limit=100)
    assert batch.id in [b.id for b in listed.data]


def test_embeddings_batch(client: openai.OpenAI) -> None:
    line = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
            "body": {"model": "embedded", "input": ["hello", "world"]}}
    uploaded = client.files.create(file=("emb.jsonl", jsonl([line])), purpose="batch")
    batch = wait(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h").id)
    assert batch.status == "completed"
    body = read_lines(client, batch.output_file_id)[0]["response"]["body"]
    assert len(body["data"]) == 2 and len(body["data"][0]["embedding"]) > 10


def test_invalid_input_file_fails_the_batch(client: openai.OpenAI) -> None:
    lines = jsonl([chat_line("a", "hi"), {**chat_line("b", "hi"), "url": "/v1/completions"},
                   chat_line("a", "dup")]) + b"not json\n"
    uploaded = client.files.create(file=("bad.jsonl", lines), purpose="batch")
    batch = wait(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)
    assert batch.status == "failed" and batch.failed_at
    codes = [(e.code, e.line) for e in batch.errors.data]
    assert codes == [("invalid_url", 2), ("duplicate_custom_id", 3), ("invalid_json_line", 4)]


def test_cancel(client: openai.OpenAI) -> None:
    lines = jsonl([chat_line(f"c{i}", f"Count to {i}", max_tokens=16) for i in range(8)])
    uploaded = client.files.create(file=("many.jsonl", lines), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = wait(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    assert batch.request_counts.completed < 8
    with pytest.raises(openai.BadRequestError):
        done = client.files.create(file=("one.jsonl", jsonl([chat_line("x", "hi")])),
                                   purpose="batch")
        finished = wait(client, client.batches.create(
            input_file_id=done.id, endpoint="/v1/chat/completions", completion_window="24h").id)
        client.batches.cancel(finished.id)  # a completed batch cannot be cancelled


def test_bad_requests_get_openai_errors(client: openai.OpenAI, eval_server: RunningServer
                                        ) -> None:
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions",
                              completion_window="24h")
    base = eval_server.base_url
    r = httpx.post(base + "/v1/batches", json={"input_file_id": "f",
                                               "endpoint": "/v1/images"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "endpoint"
    r = httpx.get(base + "/v1/batches", params={"limit": "0"})
    assert r.status_code == 400
    r = httpx.post(base + "/v1/files", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_content_type"
    r = httpx.post(base + "/v1/files", files={"file": ("a.jsonl", b"{}")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    uploaded = client.files.create(file=("gone.jsonl", b"{}\n"), purpose="batch")
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)


def test_team_keys_see_only_their_own_files_and_batches(tmp_path: Path) -> None:
    from devloop.store.db import open_db
    from devloop.store.keys import create_key
    from tests.evals.conftest import SERVER_PROFILE

    home = tmp_path / "team-home"
    home.mkdir()
    db = open_db(home / "devloop.db")
    alice, bob = create_key(db, "alice"), create_key(db, "bob")
    db.conn.close()
    profile = write_profile(tmp_path / "team.yaml", SERVER_PROFILE)
    server = start_server(profile, home, args=("--team",))
    try:
        as_alice = openai.OpenAI(base_url=server.base_url + "/v1", api_key=alice, max_retries=0)
        as_bob = openai.OpenAI(base_url=server.base_url + "/v1", api_key=bob, max_retries=0)
        uploaded = as_alice.files.create(file=("a.jsonl", jsonl([chat_line("a", "hi")])),
                                         purpose="batch")
        batch = wait(as_alice, as_alice.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions",
            completion_window="24h").id)
        assert batch.status == "completed"
        assert as_alice.files.retrieve(batch.output_file_id).bytes > 0
        for call in (lambda: as_bob.files.retrieve(uploaded.id),
                     lambda: as_bob.files.content(batch.output_file_id),
                     lambda: as_bob.batches.retrieve(batch.id),
                     lambda: as_bob.batches.cancel(batch.id),
                     lambda: as_bob.batches.create(input_file_id=uploaded.id,
                                                   endpoint="/v1/chat/completions",
                                                   completion_window="24h")):
            with pytest.raises(openai.NotFoundError):
                call()
        assert as_bob.batches.list().data == [] and as_bob.files.list().data == []
        with sqlite3.connect(home / "devloop.db") as conn:  # the line was booked to alice
            users = {r[0] for r in conn.execute("SELECT user FROM calls")}
        assert users == {"alice"}
    finally:
        server.stop()
