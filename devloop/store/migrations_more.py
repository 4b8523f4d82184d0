"""Schema migrations m011 onwards (see migrations.py): append new ones at the end."""

from __future__ import annotations

import sqlite_utils

from devloop.store.migration_list import migration


@migration
def m011_key_history(db: sqlite_utils.Database) -> None:
    """Keys keep their history: each key is its own row (a numbered id), so a revoked key
    stays listed and a new key with an old name starts with its own spend. At most one
    active key per name."""
    db.execute("ALTER TABLE keys RENAME TO keys_before_history")
    db["keys"].create(
        {
            "id": int,
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
        pk="id",
    )
    db.execute("INSERT INTO keys (name, key_prefix, salt, key_hash, created, last_used, revoked, "
               "budget_usd, budget_period, rpm, max_concurrent) SELECT name, key_prefix, salt, "
               "key_hash, created, last_used, revoked, budget_usd, budget_period, rpm, "
               "max_concurrent FROM keys_before_history ORDER BY created")
    db.execute("DROP TABLE keys_before_history")
    db.execute("CREATE UNIQUE INDEX keys_active_name ON keys (name) WHERE revoked IS NULL")


@migration
def m012_call_origin(db: sqlite_utils.Database) -> None:
    """``origin``: who sent the call ('client', or devloop's own: 'check', 'eval', 'judge',
    'probe', 'ladder'), so own traffic is never counted as saved; ``request_hash``: the
    whole request's hash, so identical requests (retries) can be counted."""
    calls = db["calls"]
    calls.add_column("origin", str)
    calls.add_column("request_hash", str)
    calls.create_index(["request_hash"])


@migration
def m013_compressions(db: sqlite_utils.Database) -> None:
    """LLMLingua results keyed by the text's hash, so unchanged text is never recompressed."""
    from devloop.store.compressions_schema import create_table

    create_table(db)


@migration
def m014_content_promotions(db: sqlite_utils.Database) -> None:
    """Promotions keyed by the eval set's content hash (prompt, cases, assertions, threshold,
    model, request settings), with the per-case hashes the gate re-checks; and each eval
    result's finish reason (a truncated output is flagged)."""
    db["eval_promotions"].create(
        {
            "content_hash": str,
            "model": str,
            "evalset": str,
            "file": str,
            "prompt_hash": str,
            "run_id": str,
            "pass_rate": float,
            "threshold": float,
            "cases_json": str,
            "ts": float,
        },
        pk=("content_hash", "model"),
    )
    db["eval_promotions"].create_index(["evalset"])
    db["eval_results"].add_column("finish_reason", str)


@migration
def m015_admin_keys(db: sqlite_utils.Database) -> None:
    """Admin keys (`devloop keys create --admin`): only they read /metrics in team mode."""
    db["keys"].add_column("admin", int, not_null_default=0)


@migration
def m016_audit(db: sqlite_utils.Database) -> None:
    """Judge sampling: the sampled calls (bodies kept only for these, redacted), their
    replay on the production tier and the judge's verdict (agree 1/0; NULL with an error)."""
    db["audit_samples"].create(
        {
            "request_id": str,
            "ts": float,
            "kind": str,  # call | semantic (a semantic-cache hit)
            "route": str,
            "feature": str,
            "tier": str,
            "model": str,
            "request_json": str,
            "response_text": str,
            "status": str,  # pending | judged | error
            "agree": int,
            "error": str,
            "replay_text": str,
            "judge_text": str,
            "cost_usd": float,
            "judged_ts": float,
        },
        pk="request_id",
    )
    db["audit_samples"].create_index(["status", "ts"])


@migration
def m017_semantic_index(db: sqlite_utils.Database) -> None:
    """The semantic cache's index (vectors, the prompt text the guard compares, the answer),
    so that it survives restarts."""
    db["semantic_entries"].create(
        {"key": str, "bucket": str, "created": float, "vector": bytes, "prompt": str,
         "completion_json": str},
        pk="key",
    )
    db["semantic_entries"].create_index(["created"])


@migration
def m018_alerts(db: sqlite_utils.Database) -> None:
    """Alerts that fired (rule + scope), when, and whether the webhook got them."""
    db["alerts_fired"].create(
        {"rule": str, "scope": str, "since": float, "value": float, "threshold": float,
         "message": str, "fired_ts": float, "sent": int},
        pk=("rule", "scope", "since"),
    )


@migration
def m019_provider_batches(db: sqlite_utils.Database) -> None:
    """Batches submitted to a provider's Batch API (eval runs, the gateway's frontier lines):
    what to poll after a restart, and what `devloop batches` lists."""
    db["provider_batches"].create(
        {"id": str, "provider": str, "model": str, "api_base": str, "kind": str,
         "status": str, "plan_key": str, "requests": int, "created_at": float,
         "updated_at": float, "context": str, "detail": str}, pk="id")
    db["provider_batches"].create_index(["plan_key"])
    db["provider_batches"].create_index(["status"])


@migration
def m020_cache_hits_in_the_ledger(db: sqlite_utils.Database) -> None:
    """The cache's ``hits`` counter goes: every hit is a ledger row (``cache = 'hit'``, with
    its ``request_hash``), and updating the counter rewrote the entry's row, answer included,
    on every hit (a quarter of a cache hit's SQLite time)."""
    db.execute("ALTER TABLE cache DROP COLUMN hits")


@migration
def m021_no_request_hash_index(db: sqlite_utils.Database) -> None:
    """No query looks rows up by ``request_hash`` (the diagnosis groups the rows it has
    read), and a random-valued index costs a B-tree page write on every ledger insert."""
    db.execute("DROP INDEX IF EXISTS idx_calls_request_hash")


@migration
def m022_lean_write_path(db: sqlite_utils.Database) -> None:
    """Fewer B-tree pages written per answered call (each is a WAL frame, two writes, at the
    commit: docs/benchmarks.md, "The hot path, third pass"). The cache keyed by its hash alone
    (WITHOUT ROWID: one tree instead of a table and its key index); no index on
    ``cache.expires`` (no query reads by it: an expired entry is found by key and skipped)
    nor on ``calls.feature`` (budgets by feature read a ``ts`` range, served by its index)."""
    db.execute("DROP INDEX IF EXISTS idx_cache_expires")
    db.execute("DROP INDEX IF EXISTS idx_calls_feature")
    cols = "key, namespace, model, body, prompt_tokens, completion_tokens, created, expires"
    db.execute("CREATE TABLE cache_lean (key TEXT PRIMARY KEY, namespace TEXT, model TEXT, "
               "body TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL, "
               "expires REAL) WITHOUT ROWID")
    db.execute(f"INSERT INTO cache_lean ({cols}) SELECT {cols} FROM cache")
    db.execute("DROP TABLE cache")
    db.execute("ALTER TABLE cache_lean RENAME TO cache")
