"""`devloop spend`: calls, tokens, actual and would-have-cost dollars, saved."""

from __future__ import annotations

import csv
import json
import sys

import click

from devloop.cli import fail, load
from devloop.store.ledger import GROUPINGS, PERIODS, format_usd, spend_report


@click.command()
@click.option("--since", type=click.Choice(list(PERIODS)), default="all", show_default=True)
@click.option("--by", "by", type=click.Choice(list(GROUPINGS)), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
def spend(since: str, by: str | None, as_json: bool, as_csv: bool) -> None:
    """What was spent, what it would have cost on the production model, and what was saved."""
    settings, profile = load()
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    if not settings.db_path.exists():
        report = {"since": since, "totals": _empty(), "groups": []}
    else:
        from devloop.store.db import open_db

        db = open_db(settings.db_path)
        try:
            report = spend_report(db, since, by)
        finally:
            db.close()
    report["production_model"] = profile.production_model
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [{"key": g["key"], **{k: v for k, v in g.items() if k != "key"}}
            for g in report["groups"]] + [{"key": "TOTAL", **report["totals"]}]
    if as_csv:
        fields = ["key", "calls", "prompt_tokens", "completion_tokens", "cost_usd",
                  "counterfactual_usd", "saved_usd", "cache_hit_rate", "local_share"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    head = f"{by or '':<22}{'calls':>7}{'tokens in':>11}{'tokens out':>11}{'spent':>11}" \
           f"{'would cost':>12}{'saved':>11}{'cache':>7}{'local':>7}"
    click.echo(f"since {since}; would-cost priced at {profile.production_model}")
    click.echo(head)
    for r in rows:
        click.echo(f"{str(r['key'])[:21]:<22}{r['calls']:>7}{r['prompt_tokens']:>11}"
                   f"{r['completion_tokens']:>11}{format_usd(r['cost_usd']):>11}"
                   f"{format_usd(r['counterfactual_usd']):>12}{format_usd(r['saved_usd']):>11}"
                   f"{r['cache_hit_rate']:>7.0%}{r['local_share']:>7.0%}")


def _empty() -> dict[str, object]:
    return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
            "counterfactual_usd": 0.0, "saved_usd": 0.0, "cache_hit_rate": 0.0,
            "local_share": 0.0}
