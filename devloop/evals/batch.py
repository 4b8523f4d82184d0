"""``devloop eval --batch``: the cases go through the OpenAI Batch API via litellm's files and
batches calls (upload a JSONL file, create a batch, poll it, read the output file).

Works with any OpenAI-compatible Batch API: OpenAI itself, or devloop's own endpoint
(``--model openai/<name> --api-base http://127.0.0.1:8790/v1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from devloop.config import ConfigError
from devloop.evals.client import EvalCallError, ModelClient, Reply, import_litellm
from devloop.evals.plan import Plan, PlannedCase, RunOptions
from devloop.evals.report import Progress

ENDPOINT = "/v1/chat/completions"
DONE = frozenset({"completed", "failed", "expired", "cancelled"})


def check_batch_model(model: str) -> None:
    """--batch speaks the OpenAI Batch API: the model must be an ``openai/`` one."""
    if not model.startswith("openai/"):
        raise ConfigError("--batch", "model", f"{model!r} is not an OpenAI-compatible model; "
                          "use --model openai/NAME (with --api-base for another server)")


def batch_lines(plan: Plan, items: list[PlannedCase]) -> bytes:
    name = plan.model.split("/", 1)[1]
    lines = []
    for item in items:
        body: dict[str, Any] = {"model": name, "messages": item.messages,
                                **{k: v for k, v in plan.params.items()
                                   if k not in ("api_base", "judge", "embedding")},
                                "max_tokens": plan.max_tokens}
        lines.append(json.dumps({"custom_id": item.case.id, "method": "POST", "url": ENDPOINT,
                                 "body": body}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _kwargs(client: ModelClient) -> dict[str, Any]:
    kw: dict[str, Any] = {"custom_llm_provider": "openai", "timeout": client.timeout}
    if client.api_base:
        kw["api_base"] = client.api_base
        if not os.environ.get("OPENAI_API_KEY"):
            kw["api_key"] = "devloop-local"
    return kw


def _content_bytes(content: Any) -> bytes:
    for attr in ("content", "read"):
        value = getattr(content, attr, None)
        if isinstance(value, bytes):
            return value
        if callable(value):
            data = value()
            if isinstance(data, bytes):
                return data
    if isinstance(content, bytes | str):
        return content.encode() if isinstance(content, str) else content
    raise EvalCallError(f"unexpected batch file content: {type(content).__name__}")


def parse_output(data: bytes) -> dict[str, Reply | Exception]:
    """OpenAI batch output/error JSONL -> custom_id: Reply, or the error for that line."""
    out: dict[str, Reply | Exception] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = int(response.get("status_code") or 0)
        if status == 200 and body.get("choices"):
            choice = body["choices"][0]
            usage = body.get("usage") or {}
            out[custom_id] = Reply((choice.get("message") or {}).get("content") or "",
                                   int(usage.get("prompt_tokens") or 0),
                                   int(usage.get("completion_tokens") or 0), None,
                                   choice.get("finish_reason") or "stop")
            continue
        error = line.get("error") or body.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        out[custom_id] = EvalCallError(f"batch request failed ({status or 'no response'}): "
                                       f"{message or 'unknown error'}", status or None)
    return out


async def batch_replies(plan: Plan, items: list[PlannedCase], opts: RunOptions,
                        client: ModelClient, progress: Progress) -> dict[str, Reply | Exception]:
    check_batch_model(plan.model)
    litellm = import_litellm()
    kw = _kwargs(client)
    data = batch_lines(plan, items)
    upload = await client._with_retries("batch file upload", lambda: litellm.acreate_file(
        file=(f"{plan.evalset.name}.jsonl", data, "application/jsonl"), purpose="batch", **kw))
    batch = await client._with_retries("batch create", lambda: litellm.acreate_batch(
        completion_window="24h", endpoint=ENDPOINT, input_file_id=upload.id,
        metadata={"devloop_evalset": plan.evalset.name}, **kw))
    progress.note(f"batch {batch.id} submitted ({len(items)} requests)")
    batch_id = batch.id
    deadline = time.monotonic() + opts.batch_timeout_s
    while batch.status not in DONE:
        if time.monotonic() > deadline:
            raise EvalCallError(f"batch {batch_id} did not finish in {opts.batch_timeout_s:g}s")
        await asyncio.sleep(opts.poll_interval_s)
        batch = await client._with_retries("batch status", lambda: litellm.aretrieve_batch(
            batch_id=batch_id, **kw))
    results: dict[str, Reply | Exception] = {}
    for file_id in (batch.error_file_id, batch.output_file_id):
        if file_id:
            content = await client._with_retries("batch output", lambda f=file_id:
                                                  litellm.afile_content(file_id=f, **kw))
            results.update(parse_output(_content_bytes(content)))
    if batch.status != "completed":
        errors = getattr(batch, "errors", None)
        detail = "; ".join(str(getattr(e, "message", e)) for e in
                           (getattr(errors, "data", None) or [])) or batch.status
        failure = EvalCallError(f"batch {batch.id} {batch.status}: {detail}")
    else:
        failure = EvalCallError(f"batch {batch.id} has no result for this case")
    return {item.case.id: results.get(item.case.id, failure) for item in items}
