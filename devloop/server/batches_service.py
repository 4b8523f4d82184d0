"""The OpenAI Files and Batch API behind devloop's endpoint: storage and the executor.

Files are kept under ``$DEVLOOP_HOME/files`` (metadata in SQLite, table ``batch_files``);
batch objects in table ``batches``. A batch runs in the background: each JSONL line's body
goes through the in-process gateway (routing, cache, budgets, ledger) exactly as the same
request over HTTP would, a few at a time, at background priority; chat lines routed to a
frontier tier go to the provider's Batch API instead (batch_forward.py). Results are
appended to a part file as they finish, so a batch interrupted by a restart resumes where it
stopped. Output/error files are in OpenAI's format (``id``, ``custom_id``, ``response``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from devloop.gateway import Gateway
from devloop.server.batch_forward import FrontierForwarder
from devloop.server.batch_objects import CallerContext, new_id, visible
from devloop.server.errors import APIError
from devloop.server.http import parse, translate
from devloop.store.batches import BatchStore
from devloop.types import ChatRequest, CompletionRequest, EmbeddingRequest, RequestContext

log = logging.getLogger("devloop.batches")

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/embeddings": "embeddings"}
WINDOW_S = 24 * 3600
LINE_CONCURRENCY = 4
MAX_LINES = 50_000  # OpenAI's limit per batch
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchService:
    def __init__(self, gateway: Gateway, folder: Path) -> None:
        self.gw = gateway
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancel_requested: set[str] = set()
        self.live: dict[str, dict[str, Any]] = {}  # batches being executed, shared with cancel
        self.db = BatchStore(gateway.read_conn, gateway.writer)
        self.forward = FrontierForwarder(gateway)

    # -- files -------------------------------------------------------------------------------
    async def add_file(self, filename: str, purpose: str, data: bytes,
                       owner: str | None = None) -> dict[str, Any]:
        file_id = new_id("file-")
        path = self.folder / file_id
        await asyncio.to_thread(path.write_bytes, data)
        row = {"id": file_id, "created_at": int(time.time()), "filename": filename,
               "purpose": purpose, "bytes": len(data), "path": str(path), "owner": owner}
        await self.db.add_file(row)
        return row

    def get_file(self, file_id: str, owner: str | None = None) -> dict[str, Any] | None:
        row = self.db.file(file_id)
        return row if visible(row, owner) else None

    def list_files(self, purpose: str | None = None, owner: str | None = None
                   ) -> list[dict[str, Any]]:
        return [r for r in self.db.files() if visible(r, owner) and (not purpose or r["purpose"] == purpose)]

    async def delete_file(self, file_id: str, owner: str | None = None) -> bool:
        row = self.get_file(file_id, owner)
        if row is None:
            return False
        await self.db.delete_file(file_id)
        with contextlib.suppress(OSError):
            Path(row["path"]).unlink()
        return True

    # -- batches -----------------------------------------------------------------------------
    def get_batch(self, batch_id: str, owner: str | None = None) -> dict[str, Any] | None:
        row = self.db.batch(batch_id)
        if not visible(row, owner):
            return None
        assert row is not None
        return self.live.get(batch_id) or json.loads(row["body"])

    def list_batches(self, limit: int, after: str | None, owner: str | None = None
                     ) -> tuple[list[dict[str, Any]], bool]:
        rows = [r for r in self.db.batches() if visible(r, owner)]
        rows = [{**r, "body": json.dumps(self.live[r["id"]])} if r["id"] in self.live else r
                for r in rows]
        ids = [r["id"] for r in rows]
        start = ids.index(after) + 1 if after in ids else 0
        page = rows[start:start + limit]
        return [json.loads(r["body"]) for r in page], start + limit < len(rows)

    async def _save(self, batch: dict[str, Any], ctx: CallerContext | None = None) -> None:
        body = json.dumps(batch)
        if ctx is not None:
            await self.db.insert_batch(batch["id"], batch["created_at"], batch["status"], body,
                                       json.dumps(asdict(ctx)), ctx.key_id)
        else:
            await self.db.update_batch(batch["id"], batch["status"], body)

    async def create_batch(self, input_file_id: str, endpoint: str, metadata: dict[str, str]
                           | None, ctx: CallerContext) -> dict[str, Any]:
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": new_id("batch_"), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": input_file_id, "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + WINDOW_S,
            "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
        }
        await self._save(batch, ctx)
        self._start(batch["id"])
        return batch

    async def cancel(self, batch_id: str, owner: str | None = None) -> dict[str, Any]:
        batch = self.get_batch(batch_id, owner)
        if batch is None:
            raise APIError(404, f"No batch found with id '{batch_id}'", "not_found", "batch_id")
        if batch["status"] in TERMINAL or batch["status"] == "cancelling":
            if batch["status"] in ("cancelled", "cancelling"):
                return batch
            raise APIError(400, f"cannot cancel a batch with status {batch['status']!r}",
                           "batch_not_cancellable")
        self.cancel_requested.add(batch_id)
        batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        await self._save(batch)
        if batch_id not in self.tasks:  # nothing running it (e.g. after a restart)
            self._start(batch_id)
        return batch

    def resume(self) -> None:
        """Restart batches a previous process left unfinished."""
        for batch_id in self.db.pending_ids():
            self._start(batch_id)

    def _start(self, batch_id: str) -> None:
        if batch_id in self.tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(batch_id),
                                                      name=f"devloop-{batch_id}")
        self.tasks[batch_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(batch_id, None))

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the executor ------------------------------------------------------------------------
    def _context(self, batch_id: str) -> CallerContext:
        row = self.db.batch(batch_id)
        data = json.loads(row["context"] or "{}") if row else {}
        return CallerContext(**data)

    def _part(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.part.jsonl"

    def _validate(self, batch: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
        """(lines, errors) as OpenAI reports them: code, message, param, line (1-based)."""
        row = self.get_file(batch["input_file_id"])
        if row is None:
            return [], [{"code": "file_not_found", "message": "the input file was deleted",
                         "param": "input_file_id", "line": None}]
        lines, errors, seen = [], [], set()
        text = Path(row["path"]).read_text(encoding="utf-8", errors="replace")
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "message": "not valid JSON",
                               "param": None, "line": n})
                continue
            problem = None
            if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
                problem = ("invalid_request", "each line needs custom_id, method, url and body")
            elif not isinstance(line.get("custom_id"), str) or not line["custom_id"]:
                problem = ("missing_custom_id", "custom_id is required")
            elif line["custom_id"] in seen:
                problem = ("duplicate_custom_id", f"custom_id {line['custom_id']!r} is repeated")
            elif str(line.get("method", "")).upper() != "POST":
                problem = ("invalid_method", "method must be POST")
            elif line.get("url") != batch["endpoint"]:
                problem = ("invalid_url", f"url must be {batch['endpoint']} (the batch endpoint)")
            if problem:
                errors.append({"code": problem[0], "message": problem[1], "param": None,
                               "line": n})
                continue
            seen.add(line["custom_id"])
            lines.append(line)
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "the input file has no requests",
                           "param": None, "line": None})
        if len(lines) > MAX_LINES:
            errors.append({"code": "too_many_requests",
                           "message": f"at most {MAX_LINES} requests per batch", "param": None,
                           "line": None})
        return lines, errors

    async def _run(self, batch_id: str) -> None:
        try:
            await self._execute(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bug must not leave the batch "in_progress"
            log.exception("batch %s failed", batch_id)
            batch = self.get_batch(batch_id)
            if batch is not None and batch["status"] not in TERMINAL:
                batch["status"], batch["failed_at"] = "failed", int(time.time())
                batch["errors"] = {"object": "list", "data": [
                    {"code": "internal_error", "message": "the batch executor failed",
                     "param": None, "line": None}]}
                await self._save(batch)

    async def _execute(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        if batch is None or batch["status"] in TERMINAL:
            return
        self.live[batch_id] = batch
        try:
            await self._execute_live(batch)
        finally:
            self.live.pop(batch_id, None)

    async def _execute_live(self, batch: dict[str, Any]) -> None:
        batch_id = batch["id"]
        lines, errors = await asyncio.to_thread(self._validate, batch)
        if errors:
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": errors})
            await self._save(batch)
            return
        done = self._done_lines(batch_id)
        counts = batch["request_counts"]
        counts["total"] = len(lines)
        counts["completed"] = sum(1 for r in done.values() if r)
        counts["failed"] = sum(1 for r in done.values() if not r)
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=int(time.time()))
        await self._save(batch)
        ctx = self._context(batch_id)
        limit = asyncio.Semaphore(LINE_CONCURRENCY)
        part = self._part(batch_id)
        lock = asyncio.Lock()

        async def write(record: dict[str, Any], ok: bool) -> None:
            async with lock:
                with part.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"ok": ok, "record": record}) + "\n")
                counts["completed" if ok else "failed"] += 1
                await self._save(batch)

        async def one(line: dict[str, Any]) -> None:
            async with limit:
                if batch_id in self.cancel_requested or time.time() > batch["expires_at"]:
                    return
                await write(*await self._call(batch["endpoint"], line, ctx))

        todo = [line for line in lines if line["custom_id"] not in done]
        if batch["status"] != "cancelling":  # frontier lines: one provider batch per model
            groups, todo = await self.forward.split(batch["endpoint"], todo, ctx)
            await asyncio.gather(self.forward.run(batch_id, groups, ctx, write, lambda: (
                batch_id in self.cancel_requested)), *(one(line) for line in todo))
        await self._finalize(batch, lines)

    def _done_lines(self, batch_id: str) -> dict[str, bool]:
        done: dict[str, bool] = {}
        part = self._part(batch_id)
        if part.exists():
            for raw in part.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    entry = json.loads(raw)
                    done[entry["record"]["custom_id"]] = bool(entry["ok"])
        return done

    async def _call(self, endpoint: str, line: dict[str, Any], caller: CallerContext
                    ) -> tuple[dict[str, Any], bool]:
        from devloop.server.openai_api import chat_body, completion_body

        kind = ENDPOINTS[endpoint]
        ctx = RequestContext(request_id=uuid.uuid4().hex, endpoint=kind,  # type: ignore[arg-type]
                             protocol="openai", feature=caller.feature, user=caller.user,
                             key_id=caller.key_id, forced_tier=caller.forced_tier,
                             cache_mode=caller.cache_mode,  # type: ignore[arg-type]
                             priority="background")
        record: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": line["custom_id"],
                                  "response": None, "error": None}
        try:
            body = dict(line["body"])
            if body.get("stream"):
                raise APIError(400, "stream is not supported in a batch", "invalid_value",
                               "stream")
            if kind == "embeddings":
                emb_req = parse(EmbeddingRequest, body)
                emb_req.texts()
                result = await self.gw.embed(emb_req, ctx)
                assert result.embeddings is not None
                out = {"object": "list", "model": result.model,
                       "data": [{"object": "embedding", "index": i, "embedding": v}
                                for i, v in enumerate(result.embeddings.vectors)],
                       "usage": {"prompt_tokens": result.embeddings.usage.prompt_tokens,
                                 "total_tokens": result.embeddings.usage.prompt_tokens}}
            else:
                req = parse(ChatRequest if kind == "chat" else CompletionRequest, body)
                result = await self.gw.call(req, ctx)
                assert result.completion is not None
                out = (chat_body if kind == "chat" else completion_body)(ctx.request_id,
                                                                         result.completion)
            record["response"] = {"status_code": 200, "request_id": ctx.request_id, "body": out}
            return record, True
        except Exception as exc:  # noqa: BLE001 - one failed line never stops the batch
            try:
                err = translate(exc)
            except Exception:  # noqa: BLE001 - not a known error: report it, keep going
                log.exception("batch line %s failed", line["custom_id"])
                err = APIError(500, f"internal error: {type(exc).__name__}", "internal_error",
                               type_="server_error")
            record["response"] = {"status_code": err.status, "request_id": ctx.request_id,
                                  "body": err.openai_body()}
            return record, False

    async def _finalize(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        batch_id = batch["id"]
        cancelled = batch_id in self.cancel_requested or batch["status"] == "cancelling"
        expired = not cancelled and time.time() > batch["expires_at"]
        if not cancelled and not expired:
            batch.update(status="finalizing", finalizing_at=int(time.time()))
            await self._save(batch)
        done = self._done_lines(batch_id)
        order = {line["custom_id"]: i for i, line in enumerate(lines)}
        outputs, failures = [], []
        part = self._part(batch_id)
        if part.exists():
            for raw in part.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError):
                    entry = json.loads(raw)
                    (outputs if entry["ok"] else failures).append(entry["record"])
        if expired:
            for line in lines:
                if line["custom_id"] not in done:
                    failures.append({"id": new_id("batch_req_"), "custom_id": line["custom_id"],
                                     "response": None, "error": {
                                         "code": "batch_expired",
                                         "message": "This request could not be executed "
                                                    "before the completion window expired."}})
            batch["request_counts"]["failed"] = len(failures)
        for records, key, suffix in ((outputs, "output_file_id", "output"),
                                     (failures, "error_file_id", "error")):
            if records:
                records.sort(key=lambda r: order.get(r["custom_id"], 0))
                data = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
                row = await self.add_file(f"{batch_id}_{suffix}.jsonl", "batch_output", data,
                                          self._context(batch_id).key_id)
                batch[key] = row["id"]
        now = int(time.time())
        if cancelled:
            batch.update(status="cancelled", cancelled_at=now)
        elif expired:
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)
        await self._save(batch)
        self.cancel_requested.discard(batch_id)
        with contextlib.suppress(OSError):
            part.unlink()
