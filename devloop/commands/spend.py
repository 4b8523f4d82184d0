"""`devloop spend`: calls, tokens, actual and would-have-cost dollars, saved."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from typing import Any

import click

from devloop.commands._common import fail, load
from devloop.commands.spend_table import spend_lines
from devloop.commands.spend_views import diagnose_report, diagnosis_lines
from devloop.store.spend import GROUPINGS, period_seconds, spend_report

CSV_FIELDS = ["key", "calls", "prompt_tokens", "completion_tokens", "cost_usd",
              "counterfactual_usd", "saved_usd", "cache_hit_rate", "local_share",
              "unpriced_calls", "cache_read_tokens", "cache_write_tokens",
              "provider_cache_hit_rate", "refused_calls", "failed_calls", "failed_cost_usd",
              "retries", "escalations", "output_tokens_p50", "output_tokens_p95"]


@click.command()
@click.option("--since", default="all", show_default=True,
              help="1d, 7d, 30d or all (also e.g. 12h, 2w).")
@click.option("--by", "by", type=click.Choice(list(GROUPINGS)), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable totals and groups.")
@click.option("--csv", "as_csv", is_flag=True, help="One row per group, then TOTAL.")
@click.option("--diagnose", is_flag=True,
              help="Why provider prompt caching misses, per feature, with its cost.")
@click.option("--profile", default=None, help="Profile (for the production model's name).")
def spend(since: str, by: str | None, as_json: bool, as_csv: bool, diagnose: bool,
          profile: str | None) -> None:
    """What was spent, what it would have cost on the production model, and what was saved."""
    settings, prof = load(profile)
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    try:
        period_seconds(since)
    except ValueError as exc:
        fail(str(exc))
    if diagnose:
        _diagnose(settings, prof, since, as_json)
        return
    if not settings.db_path.exists():
        report: dict[str, Any] = {"since": since, "totals": _empty(), "groups": []}
    else:
        from devloop.store.db import open_db

        db = open_db(settings.db_path)
        try:
            report = spend_report(db, since, by, settings.zone())
        finally:
            db.close()
    report["production_model"] = prof.production_model
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [*report["groups"], {"key": "TOTAL", **report["totals"]}]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    for line in spend_lines(report, by, prof.production_model, terminal_width()):
        click.echo(line)
    unpriced = report["totals"].get("unpriced_calls") or 0
    if unpriced:
        click.echo(f"{unpriced} call(s) used a model with no known price: their cost is "
                   "unknown (add it under `prices:` in the profile)")


def terminal_width() -> int | None:
    """The terminal's columns (or $COLUMNS); None on a pipe, where nothing is cut."""
    columns = shutil.get_terminal_size((0, 0)).columns
    return columns if columns > 0 else None


def _diagnose(settings: Any, prof: Any, since: str, as_json: bool) -> None:
    report: dict[str, Any] = {"since": since, "diagnoses": []}
    if settings.db_path.exists():
        from devloop.store.db import open_db

        db = open_db(settings.db_path)
        try:
            report.update(diagnose_report(db, prof, period_seconds(since)))
        finally:
            db.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in diagnosis_lines(report):
        click.echo(line)


def _empty() -> dict[str, object]:
    return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
            "counterfactual_usd": 0.0, "saved_usd": 0.0, "cache_hit_rate": 0.0,
            "local_share": 0.0, "unpriced_calls": 0, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "provider_cache_hit_rate": None, "refused_calls": 0,
            "failed_calls": 0, "failed_cost_usd": 0.0, "retries": 0, "escalations": 0,
            "own_calls": 0, "output_tokens_p50": None, "output_tokens_p95": None,
            "production_models": []}
