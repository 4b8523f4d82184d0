"""`devloop batches list|status|cancel`: batches devloop submitted to a provider's Batch API
(eval runs, the gateway's frontier lines); and the `--batch` set-up of `devloop eval`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from devloop.commands._common import fail, load_settings

if TYPE_CHECKING:
    from devloop.config import Profile
    from devloop.evals.evalset import EvalSet
    from devloop.evals.plan import RunOptions
    from devloop.pricing import Pricing


def batch_setup(evalsets: list[EvalSet], opts: RunOptions, prof: Profile, auto: bool,
                echo: Callable[[str], None]) -> Pricing | None:
    """Check that every model's provider has a Batch API (else fail, or with --batch=auto
    fall back to synchronous calls, saying so); the pricing for the run (batch prices)."""
    from devloop.batch_pricing import BatchPricing
    from devloop.evals.batch_providers import BATCH_PROVIDERS, provider_of, supports_batch
    from devloop.evals.runner import model_for

    models = {model_for(es, opts, prof) for es in evalsets}
    missing = sorted(m for m in models if not supports_batch(m))
    if missing:
        names = ", ".join(f"{m} (provider {provider_of(m)!r})" for m in missing)
        if not auto:
            fail(f"--batch: no Batch API for {names}; devloop batches through "
                 f"{', '.join(BATCH_PROVIDERS)}; use --batch=auto to run synchronously instead")
        if opts.progress:
            echo(f"eval: --batch=auto: no Batch API for {names}; running synchronously at "
                 "the synchronous price")
        opts.batch, opts.db_path = False, None
        return None
    return BatchPricing(prof, models)


def _store() -> Any:
    from devloop.store.batches import ProviderBatchStore

    settings = load_settings()
    if not settings.db_path.exists():
        fail(f"no database at {settings.db_path}: nothing has been batched yet")
    return ProviderBatchStore(settings.db_path)


def _row(store: Any, batch_id: str) -> dict[str, Any]:
    row = store.get(batch_id)
    if row is None:
        fail(f"batches: batch_id: no batch {batch_id!r} (see `devloop batches list`)")
    return dict(row)


@click.group("batches")
def batches() -> None:
    """Batches submitted to provider Batch APIs (ids and state survive restarts)."""


@batches.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def list_cmd(as_json: bool, limit: int) -> None:
    """Newest first."""
    store = _store()
    try:
        rows = store.all(limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"batches": rows}, indent=2))
        return
    if not rows:
        click.echo("no batches")
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['provider']:<9} {r['model']:<32} {r['kind']:<7} "
                   f"{r['status']:<11} {r['requests']} requests")


@batches.command("status")
@click.argument("batch_id")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Ask the provider for the batch's current state.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def status_cmd(batch_id: str, refresh: bool, as_json: bool) -> None:
    """One batch: stored state, refreshed from the provider."""
    store = _store()
    try:
        row = _row(store, batch_id)
        if refresh and row["status"] not in ("ended", "cancelled", "failed", "expired"):
            status, detail = asyncio.run(_provider_call(row, "poll"))
            store.update(batch_id, status, detail)
            row = _row(store, batch_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(row, indent=2))
    else:
        for key in ("id", "provider", "model", "api_base", "kind", "status", "requests",
                    "detail"):
            click.echo(f"{key}: {row[key]}")


@batches.command("cancel")
@click.argument("batch_id")
def cancel_cmd(batch_id: str) -> None:
    """Ask the provider to cancel the batch (requests already answered are kept)."""
    store = _store()
    try:
        row = _row(store, batch_id)
        if row["status"] in ("ended", "cancelled", "failed", "expired"):
            fail(f"batches: batch_id: {batch_id} is already {row['status']}")
        status = asyncio.run(_provider_call(row, "cancel"))
        store.update(batch_id, status, "cancel requested")
    finally:
        store.close()
    click.echo(f"{batch_id}: {status}")


async def _provider_call(row: dict[str, Any], what: str) -> Any:
    from devloop.evals.batch_providers import client_for
    from devloop.evals.client import EvalCallError, ModelClient

    client = ModelClient(row["api_base"] or None, 1, 2, 60.0, 0.5)
    provider = client_for(row["model"], row["api_base"] or None, client)
    try:
        return await getattr(provider, what)(row["id"])
    except EvalCallError as exc:
        fail(f"batches: {row['id']}: {exc}")
