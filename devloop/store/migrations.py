"""Numbered schema migrations, applied in order on open (the simonw/llm pattern).

Append new functions; never edit or reorder an existing one: a database records how
many it has applied in ``_migrations``. m001-m010 are here, m011 onwards in
migrations_more.py (imported below, so the list is whole once this module is).
"""

from __future__ import annotations

import sqlite_utils

from devloop.store.migration_list import MIGRATIONS, Migration, migration


@migration
def m001_calls(db: sqlite_utils.Database) -> None:
    db["calls"].create(
        {
            "id": int,
            "ts": float,
            "request_id": str,
            "endpoint": str,
            "feature": str,
            "user": str,
            "tier": str,
            "backend": str,
            "model": str,
            "route_reason": str,
            "cache": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "latency_ms": float,
            "status": int,
            "cost_usd": float,
            "counterfactual_usd": float,
            "saved_usd": float,
        },
        pk="id",
    )
    db["calls"].create_index(["ts"])


@migration
def m002_call_details(db: sqlite_utils.Database) -> None:
    """Cached tokens, time to first token, errors, prompt identity, team queueing."""
    calls = db["calls"]
    for column, kind in [
        ("cached_tokens", int),
        ("ttft_ms", float),
        ("stream", int),
        ("error", str),
        ("key_id", str),
        ("prompt_hash", str),
        ("prefix_hash", str),
        ("tokens_counted", int),
        ("queue_position", int),
        ("queue_wait_ms", float),
        ("production_model", str),
    ]:
        calls.add_column(column, kind)  # type: ignore[arg-type]
    calls.create_index(["feature"])
    calls.create_index(["tier"])


@migration
def m003_cache(db: sqlite_utils.Database) -> None:
    db["cache"].create(
        {
            "key": str,
            "namespace": str,
            "model": str,
            "body": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "created": float,
            "expires": float,
            "hits": int,
        },
        pk="key",
    )
    db["cache"].create_index(["expires"])


@migration
def m004_budgets(db: sqlite_utils.Database) -> None:
    """Reservations of worst-case spend, settled to the actual cost after the call."""
    db["reservations"].create(
        {"id": str, "ts": float, "scopes": str, "usd": float, "settled": int}, pk="id"
    )
    db["reservations"].create_index(["ts"])


@migration
def m005_keys(db: sqlite_utils.Database) -> None:
    db["keys"].create(
        {
            "name": str,
            "key_prefix": str,
            "salt": str,
            "key_hash": str,
            "created": float,
            "last_used": float,
            "revoked": float,
            "budget_usd": float,
            "budget_period": str,
            "rpm": int,
            "max_concurrent": int,
        },
        pk="name",
    )


@migration
def m006_prompt_checks(db: sqlite_utils.Database) -> None:
    """Pipeline stage results (`devloop check`/`watch`), keyed by the prompt's content hash."""
    db["prompt_checks"].create(
        {
            "id": int,
            "prompt_hash": str,
            "file": str,
            "name": str,
            "stage": str,  # draft | compression | cache_order | eval (status "stale")
            "status": str,
            "result_json": str,
            "created": float,
        },
        pk="id",
    )
    db["prompt_checks"].create_index(["prompt_hash", "stage"])
    db["prompt_checks"].create_index(["file", "created"])


@migration
def m007_evals(db: sqlite_utils.Database) -> None:
    """`devloop eval`: runs, per-case results (also the result cache) and promoted prompts."""
    db["eval_runs"].create(
        {
            "id": str,
            "ts": float,
            "evalset": str,
            "file": str,
            "prompt_hash": str,
            "model": str,
            "api_base": str,
            "threshold": float,
            "pass_rate": float,
            "cases": int,
            "passed": int,
            "failed": int,
            "errors": int,
            "cached_cases": int,
            "cost_usd": float,
            "saved_usd": float,
            "estimate_usd": float,
            "status": str,  # pass | fail | error
            "batch": int,
        },
        pk="id",
    )
    db["eval_runs"].create_index(["prompt_hash", "model"])
    db["eval_results"].create(
        {
            "id": int,
            "run_id": str,
            "ts": float,
            "cache_key": str,  # sha256(prompt hash, case hash, model, parameters)
            "evalset": str,
            "prompt_hash": str,
            "case_hash": str,
            "case_id": str,
            "model": str,
            "pass": int,
            "score": float,
            "reason": str,
            "output": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "cost_usd": float,
            "latency_ms": float,
            "cached": int,  # 1 when this row reused an earlier result
            "error": str,
            "assertions_json": str,
        },
        pk="id",
    )
    db["eval_results"].create_index(["cache_key"])
    db["eval_results"].create_index(["run_id"])
    db["promotions"].create(
        {
            "prompt_hash": str,
            "model": str,
            "evalset": str,
            "file": str,
            "run_id": str,
            "pass_rate": float,
            "threshold": float,
            "ts": float,
        },
        pk=("prompt_hash", "model"),
    )


@migration
def m008_batches(db: sqlite_utils.Database) -> None:
    """The OpenAI Files and Batch API: uploaded/output files and batch jobs."""
    db["batch_files"].create(
        {"id": str, "created_at": int, "filename": str, "purpose": str, "bytes": int,
         "path": str, "owner": str},  # owner: the team key that uploaded it (None solo)
        pk="id",
    )
    db["batches"].create(
        {"id": str, "created_at": int, "status": str, "body": str, "context": str,
         "owner": str},
        pk="id",
    )
    db["batches"].create_index(["created_at"])


@migration
def m009_call_bodies(db: sqlite_utils.Database) -> None:
    """Request and response bodies of chat calls, only with `store_bodies: true` (routing audit).

    Never headers: the request is the canonical JSON body, which carries no keys.
    """
    db["call_bodies"].create(
        {
            "request_id": str,
            "ts": float,
            "feature": str,
            "tier": str,
            "model": str,
            "request_json": str,
            "response_text": str,
        },
        pk="request_id",
    )
    db["call_bodies"].create_index(["ts"])


@migration
def m010_ledger_contract_columns(db: sqlite_utils.Database) -> None:
    """The ledger columns DESIGN.md names: provider cache reads/writes (and the write TTL),
    reasoning tokens, input/output cost, the agent session, batch, cascade parent,
    semantic-cache similarity and whether the audit sampled the call."""
    calls = db["calls"]
    for column, kind in [
        ("cache_read_tokens", int),
        ("cache_write_tokens", int),
        ("cache_write_ttl", str),  # '5m' | '1h'
        ("reasoning_tokens", int),
        ("input_cost_usd", float),
        ("output_cost_usd", float),
        ("session", str),
        ("batch_id", str),
        ("parent_request_id", str),
        ("semantic_similarity", float),
    ]:
        calls.add_column(column, kind)  # type: ignore[arg-type]
    calls.add_column("audit_sampled", int, not_null_default=0)


# m011 onwards; importing the module appends them, after the ones above.
from devloop.store import migrations_more  # noqa: E402

__all__ = ["MIGRATIONS", "Migration", "migration", "migrations_more"]
