"""`devloop keys create|list|revoke`: the API keys of a team server (`devloop serve --team`).

A key is printed once, at creation; the database keeps only a salted hash. Keys live in
the same SQLite file as the ledger (DEVLOOP_HOME), so run these commands on the team box.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from devloop.commands._common import fail, load_settings
from devloop.money import format_usd
from devloop.periods import period_bounds
from devloop.store.db import Database

REFRESH_NOTE = "a running team server picks this up within a few seconds"


def _open() -> Database:
    from devloop.store.db import StoreError, open_db_checked

    try:
        return open_db_checked(load_settings().db_path)
    except StoreError as exc:
        fail(str(exc))
        raise  # unreachable


@click.group()
def keys() -> None:
    """Create, list and revoke the API keys of a team server."""


@keys.command()
@click.argument("name")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Spend cap in USD per period; calls beyond it get 429 budget_exceeded.")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default=None,
              help="Budget period (calendar, UTC; default day).")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None,
              help="Requests in flight at once.")
def create(name: str, budget: float | None, period: str | None, rpm: int | None,
           max_concurrent: int | None) -> None:
    """Create a key for NAME and print it (the only time it is shown)."""
    from devloop.store.keys import KeyError_, create_key

    if period and budget is None:
        fail("--period applies to --budget; give --budget USD too")
    db = _open()
    try:
        key = create_key(db, name, budget, period or "day", rpm, max_concurrent)
    except KeyError_ as exc:
        fail(str(exc))
    finally:
        db.close()
    click.echo(key)
    limits = _limits_text(budget, period or "day", rpm, max_concurrent)
    click.echo(f"created key {name!r} ({limits}). This is the only time it is shown: hand it "
               f"to its user, who sets it in the environment variable named by the shared "
               f"tier's api_key_env (e.g. DEVLOOP_SHARED_KEY).", err=True)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
def list_cmd(as_json: bool, show_all: bool) -> None:
    """Name, created, last used, spend and limits of each key (never the key itself)."""
    from devloop.store.keys import list_keys

    db = _open()
    try:
        zone = load_settings().zone()  # budget periods in the `timezone` setting's zone
        rows = [_shape(db, r, zone) for r in list_keys(db)]
    finally:
        db.close()
    if not show_all and not as_json:
        rows = [r for r in rows if r["status"] == "active"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no keys; create one with `devloop keys create NAME`")
        return
    click.echo(f"{'name':<18}{'key':<14}{'created':<18}{'last used':<18}{'calls':>7}"
               f"{'spend':>11}  {'budget':<22}{'rpm':>5}{'conc':>6}  status")
    for r in rows:
        budget = "-"
        if r["budget_usd"] is not None:
            budget = f"{format_usd(r['period_spend_usd'])} of ${r['budget_usd']:g}/{r['budget_period']}"
        click.echo(f"{r['name'][:17]:<18}{r['key_prefix'] + '…':<14}{_when(r['created']):<18}"
                   f"{_when(r['last_used']):<18}{r['calls']:>7}{format_usd(r['spend_usd']):>11}  "
                   f"{budget:<22}{r['rpm'] or '-':>5}{r['max_concurrent'] or '-':>6}  {r['status']}")


@keys.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke NAME's key: the team server refuses it from then on (401)."""
    from devloop.store.keys import KeyError_, revoke_key

    db = _open()
    try:
        revoke_key(db, name)
    except KeyError_ as exc:
        fail(str(exc))
    finally:
        db.close()
    click.echo(f"revoked key {name!r}; {REFRESH_NOTE}")


def _shape(db: Database, row: dict[str, Any], zone: Any = None) -> dict[str, Any]:
    """One key as `keys list --json` reports it (stable names; times are ISO 8601 UTC)."""
    last = max((t for t in (row["last_used"], row["last_call"]) if t is not None), default=None)
    period_spend = None
    if row["budget_usd"] is not None:
        start, _ = period_bounds(row["budget_period"] or "day", time.time(), zone)
        from devloop.store.keys import key_spend_since

        period_spend = key_spend_since(db, row["name"], start, row["created"])
    return {
        "name": row["name"],
        "key_prefix": row["key_prefix"],
        "status": "revoked" if row["revoked"] is not None else "active",
        "created": _iso(row["created"]),
        "last_used": _iso(last),
        "revoked": _iso(row["revoked"]),
        "calls": row["calls"],
        "spend_usd": round(float(row["spend_usd"] or 0.0), 10),
        "period_spend_usd": None if period_spend is None else round(float(period_spend), 10),
        "budget_usd": row["budget_usd"],
        "budget_period": row["budget_period"],
        "rpm": row["rpm"],
        "max_concurrent": row["max_concurrent"],
    }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _when(iso: str | None) -> str:
    if iso is None:
        return "never"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")


def _limits_text(budget: float | None, period: str, rpm: int | None,
                 max_concurrent: int | None) -> str:
    parts = [f"budget ${budget:g}/{period}" if budget is not None else "no budget"]
    parts.append(f"{rpm} requests/min" if rpm else "no rpm limit")
    parts.append(f"{max_concurrent} at once" if max_concurrent else "no concurrency limit")
    return ", ".join(parts)
