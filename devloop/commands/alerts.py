"""`devloop alerts [--json]`: the alert rules that fire now on the ledger."""

from __future__ import annotations

import asyncio
import json

import click

from devloop.commands._common import fail, load


@click.command()
@click.option("--json", "as_json", is_flag=True, help='{"alerts": [{"rule", "scope", ...}]}')
@click.option("--notify", is_flag=True, help="Also send them to the profile's alerts.webhook.")
@click.option("--profile", default=None, help="Profile (its alerts: rules and webhook).")
def alerts(as_json: bool, notify: bool, profile: str | None) -> None:
    """Evaluate the alert rules on the ledger: spend spikes, cache, error and judge rates."""
    from devloop.alerts import evaluate, send_webhook

    settings, prof = load(profile)
    if notify and not prof.alerts.webhook:
        fail("--notify: the profile sets no alerts.webhook")
    found = []
    if settings.db_path.exists():
        from devloop.store.db import connect

        conn = connect(settings.db_path)
        try:
            found = evaluate(conn, prof)
        finally:
            conn.close()
    if notify and found and prof.alerts.webhook and \
            not asyncio.run(send_webhook(prof.alerts.webhook, found)):
        fail(f"alerts.webhook: {prof.alerts.webhook} did not accept the alerts")
    if as_json:
        click.echo(json.dumps({"alerts": [a.as_json() for a in found]}, indent=2))
        return
    if not found:
        click.echo("no alerts")
        return
    for a in found:
        click.echo(f"{a.rule} [{a.scope}]: {a.message}")
