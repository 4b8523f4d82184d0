"""OpenAI Files + Batch API routes: ``/v1/files`` and ``/v1/batches``.

Any OpenAI client (the ``openai`` SDK, litellm's files/batches calls, ``devloop eval
--batch``) can upload a JSONL file of requests, start a batch, poll it and read the output
file. Execution is in :mod:`devloop.server.batches_service`. Mounted by ``create_app`` via
``batch_routes``; the service needs ``app.state.gateway`` and ``app.state.settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devloop.server.batch_objects import CallerContext, file_object
from devloop.server.batches_service import ENDPOINTS, BatchService
from devloop.server.errors import APIError
from devloop.server.http import context, endpoint, gateway, read_json

MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's limit for a batch input file
PURPOSES = frozenset({"batch"})


def service(request: Request) -> BatchService:
    """One service per app (and per gateway), created on first use; it resumes unfinished
    batches when it starts."""
    app = request.app
    gw = gateway(request)
    svc: BatchService | None = getattr(app.state, "batch_service", None)
    if svc is None or svc.gw is not gw:
        svc = BatchService(gw, app.state.settings.home / "files")
        app.state.batch_service = svc
        svc.resume()
    return svc


def owner(request: Request) -> str | None:
    """The team key making the request (None when devloop runs solo)."""
    key = request.scope.get("devloop.key")
    return key["name"] if key else None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _not_found(kind: str, ident: str, param: str) -> APIError:
    return APIError(404, f"No such {kind} object: {ident}", "not_found", param)


# -- files -------------------------------------------------------------------------------------
@endpoint
async def upload_file(request: Request) -> Response:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        raise APIError(413, f"file upload is {declared} bytes; the limit is {MAX_FILE_BYTES}",
                       "request_too_large")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise APIError(400, "upload the file as multipart/form-data with fields file and "
                            "purpose", "invalid_content_type")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # noqa: BLE001 - malformed multipart is the client's mistake
        raise APIError(400, f"could not read the multipart body: {exc}", "invalid_body"
                       ) from None
    try:
        purpose = form.get("purpose")
        upload = form.get("file")
        if not isinstance(purpose, str) or not purpose:
            raise APIError(400, "missing required field 'purpose'", "missing_field", "purpose")
        if purpose not in PURPOSES:
            raise APIError(400, f"purpose {purpose!r} is not supported: devloop keeps files for "
                                "the Batch API (purpose=batch)", "invalid_value", "purpose")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "missing required file field 'file'", "missing_field", "file")
        data = await upload.read()
        filename = upload.filename or "upload.jsonl"
    finally:
        await form.close()
    if len(data) > MAX_FILE_BYTES:
        raise APIError(413, f"file is larger than {MAX_FILE_BYTES} bytes", "request_too_large")
    row = await service(request).add_file(filename, purpose, data, owner(request))
    return _json(file_object(row))


@endpoint
async def list_files(request: Request) -> Response:
    rows = service(request).list_files(request.query_params.get("purpose") or None,
                                       owner(request))
    data = [file_object(r) for r in rows]
    return _json({"object": "list", "data": data, "has_more": False,
                  "first_id": data[0]["id"] if data else None,
                  "last_id": data[-1]["id"] if data else None})


@endpoint
async def get_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    row = service(request).get_file(file_id, owner(request))
    if row is None:
        raise _not_found("File", file_id, "file_id")
    return _json(file_object(row))


@endpoint
async def file_content(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    row = service(request).get_file(file_id, owner(request))
    if row is None:
        raise _not_found("File", file_id, "file_id")
    try:
        data = Path(row["path"]).read_bytes()
    except OSError:
        raise _not_found("File", file_id, "file_id") from None
    return Response(data, 200, media_type="application/octet-stream")


@endpoint
async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    if not await service(request).delete_file(file_id, owner(request)):
        raise _not_found("File", file_id, "file_id")
    return _json({"id": file_id, "object": "file", "deleted": True})


# -- batches -----------------------------------------------------------------------------------
def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) > 16
            or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64
                       and len(v) <= 512 for k, v in value.items())):
        raise APIError(400, "metadata must be at most 16 string keys (64 chars) with string "
                            "values (512 chars)", "invalid_value", "metadata")
    return value


@endpoint
async def create_batch(request: Request) -> Response:
    body = await read_json(request)
    input_file_id = body.get("input_file_id")
    target = body.get("endpoint")
    if not isinstance(input_file_id, str) or not input_file_id:
        raise APIError(400, "missing required field 'input_file_id'", "missing_field",
                       "input_file_id")
    if target not in ENDPOINTS:
        raise APIError(400, f"endpoint must be one of {', '.join(ENDPOINTS)}", "invalid_value",
                       "endpoint")
    if body.get("completion_window", "24h") != "24h":
        raise APIError(400, "completion_window must be 24h", "invalid_value",
                       "completion_window")
    metadata = _metadata(body.get("metadata"))
    svc = service(request)
    row = svc.get_file(input_file_id, owner(request))
    if row is None:
        raise _not_found("File", input_file_id, "input_file_id")
    if row["purpose"] != "batch":
        raise APIError(400, f"file {input_file_id} has purpose {row['purpose']!r}; a batch "
                            "needs purpose=batch", "invalid_value", "input_file_id")
    ctx = context(request, ENDPOINTS[target], "openai")  # type: ignore[arg-type]
    caller = CallerContext(ctx.feature, ctx.user, ctx.key_id, ctx.forced_tier, ctx.cache_mode)
    batch = await svc.create_batch(input_file_id, target, metadata, caller)
    return _json(batch)


@endpoint
async def get_batch(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    batch = service(request).get_batch(batch_id, owner(request))
    if batch is None:
        raise _not_found("Batch", batch_id, "batch_id")
    return _json(batch)


@endpoint
async def cancel_batch(request: Request) -> Response:
    return _json(await service(request).cancel(request.path_params["batch_id"],
                                               owner(request)))


@endpoint
async def list_batches(request: Request) -> Response:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise APIError(400, "limit must be an integer from 1 to 100", "invalid_value", "limit")
    data, more = service(request).list_batches(int(raw), request.query_params.get("after"),
                                               owner(request))
    return _json({"object": "list", "data": data, "has_more": more,
                  "first_id": data[0]["id"] if data else None,
                  "last_id": data[-1]["id"] if data else None})


def batch_routes(settings: Any = None) -> list[Route]:
    """The routes to mount (``create_app`` calls this with its Settings; unused here)."""
    return [
        Route("/v1/files", upload_file, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/batches", create_batch, methods=["POST"]),
        Route("/v1/batches", list_batches, methods=["GET"]),
        Route("/v1/batches/{batch_id}", get_batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    ]
