"""`devloop eval --from-ledger`: the command-line side of the routing audit (devloop.evals.audit).

Exit codes: 0 the audit ran (whatever the agreement, unless --threshold asks for more); 1 the
agreement rate is below --threshold; 2 an error: no stored bodies, a bad option, a call that
failed for good, or --max-cost refusing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import click

from devloop.commands._common import fail, load
from devloop.config import Profile, Settings
from devloop.evals.assertions import DEFAULT_SIMILAR_THRESHOLD
from devloop.evals.audit import (
    AUDIT_FEATURE,
    DEFAULT_SAMPLE,
    AuditOptions,
    AuditResult,
    GraderKind,
    choose,
    parse_sample,
    plan,
    run_audit,
    total_estimate,
    unpriced,
)
from devloop.money import format_usd
from devloop.pricing import Pricing
from devloop.store.bodies import count_bodies, load_bodies
from devloop.store.db import connect
from devloop.store.spend import LOCAL_TIERS, period_seconds

DEFAULT_SINCE = "7d"


@dataclass(slots=True)
class LedgerArgs:
    """The eval command's options as given (None: not given, the audit's default applies)."""

    model: str | None
    api_base: str | None
    feature: str | None
    sample: str | None
    since: str | None
    seed: int | None
    grader: str | None
    judge_model: str | None
    embedding_model: str | None
    min_similarity: float | None
    threshold: float | None
    max_cost: float | None
    concurrency: int
    retries: int
    json_file: str | None
    quiet: bool


def run_from_ledger(settings: Settings, prof: Profile, args: LedgerArgs) -> int:
    sample, since = args.sample or DEFAULT_SAMPLE, args.since or DEFAULT_SINCE
    seed = args.seed or 0
    grader = cast(GraderKind, args.grader or "auto")
    min_similarity = (DEFAULT_SIMILAR_THRESHOLD if args.min_similarity is None
                      else args.min_similarity)
    try:
        parse_sample(sample)
        seconds = period_seconds(since)
    except ValueError as exc:
        fail(str(exc))
        return 2
    db_path = settings.db_path
    no_bodies = (f"no stored request bodies in {db_path}: set `store_bodies: true` in the "
                 f"profile so that calls are recorded for the audit")
    if not db_path.exists():
        fail(no_bodies)
    conn = connect(db_path)
    try:
        stored = count_bodies(conn)
        if not stored:
            fail(no_bodies)
        since_ts = None if seconds is None else time.time() - seconds
        calls = load_bodies(conn, LOCAL_TIERS, since_ts, args.feature, AUDIT_FEATURE)
    finally:
        conn.close()
    if not calls:
        where = f" with feature {args.feature!r}" if args.feature else ""
        fail(f"no stored calls served by local tiers ({', '.join(LOCAL_TIERS)}){where} in "
             f"the last {since}; {stored} bodies are stored in {db_path}")
    picked = choose(calls, sample, seed)
    replays, broken = plan(picked)
    opts = AuditOptions(model=args.model or prof.production_model, api_base=args.api_base,
                        grader=grader, judge_model=args.judge_model,
                        embedding_model=args.embedding_model, min_similarity=min_similarity,
                        concurrency=args.concurrency, max_retries=args.retries,
                        progress=not args.quiet)
    pricing = Pricing(prof)
    estimate = total_estimate(replays, opts, pricing)
    if not args.quiet:
        click.echo(f"audit: {len(picked)} of {len(calls)} stored local calls (seed "
                   f"{seed}) on {opts.model}, graded by {_grader_label(opts)}; "
                   f"worst-case cost {format_usd(estimate)}", err=True)
    if args.max_cost is not None and replays:
        if estimate is None:
            fail(f"--max-cost: cannot estimate the cost: no price for "
                 f"{', '.join(unpriced(opts, pricing))} (set prices: in the profile); "
                 f"nothing was called")
        elif estimate > args.max_cost:
            fail(f"--max-cost: worst-case cost {format_usd(estimate)} is above "
                 f"${args.max_cost:g}; nothing was called")
    result = asyncio.run(run_audit(replays, broken, opts, pricing, len(calls), sample, seed,
                                   estimate))
    print_audit(result)
    for note in result.notes:
        click.echo(f"devloop: note: {note}", err=True)
    errors = list(dict.fromkeys(r.error for r in result.calls if r.error))
    for error in errors[:3]:  # the table cuts reasons short; say each error in full once
        click.echo(f"devloop: error: {error}", err=True)
    if args.json_file:
        path = Path(args.json_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result.as_json(), indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write report: {exc.filename}: {exc.strerror}")
    if errors:
        return 2
    rate = result.total().agreement_rate
    if args.threshold is not None and (rate is None or rate < args.threshold - 1e-12):
        return 1
    return 0


def _grader_label(opts: AuditOptions) -> str:
    similar = f"embedding similarity on {opts.embedder} (>= {opts.min_similarity:g})"
    judge = f"the judge {opts.judge}"
    return {"similar": similar, "judge": judge,
            "auto": f"{similar}, else {judge}"}[opts.grader]


def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def print_audit(result: AuditResult) -> None:
    width = shutil.get_terminal_size((120, 24)).columns
    feat_w = min(max([len(r.call.feature or "(none)") for r in result.calls] + [7]), 20)
    reason_w = max(width - (12 + feat_w + 8 + 8 + 6 + 10 + 12), 20)
    click.echo(f"{'request':<12}  {'feature':<{feat_w}}  {'tier':<8}  {'result':<8}  "
               f"{'score':>5}  {'reason':<{reason_w}}  {'cost':>10}")
    for r in result.calls:
        verdict = "ERROR" if r.error else ("AGREE" if r.agree else "DISAGREE")
        click.echo(f"{r.call.request_id[:12]:<12}  {_cut(r.call.feature or '(none)', feat_w):<{feat_w}}"
                   f"  {r.call.tier:<8}  {verdict:<8}  {r.score:>5.2f}  "
                   f"{_cut(r.error or r.reason, reason_w):<{reason_w}}  {format_usd(r.cost_usd):>10}")
    features = result.by_feature()
    if len(features) > 1:
        click.echo("")
        for name, t in features.items():
            click.echo(f"  {name}: {_rate(t.agreed, t.graded)}, cost {format_usd(t.cost_usd)}"
                       + (f", {t.errors} errors" if t.errors else ""))
    total = result.total()
    parts = [f"routing audit on {result.model} ({result.grader}): agreement "
             f"{_rate(total.agreed, total.graded)} of {len(result.calls)} sampled from "
             f"{result.population} stored local calls",
             f"cost {format_usd(total.cost_usd)} (estimate {format_usd(result.estimate_usd)})"]
    if total.errors:
        parts.append(f"{total.errors} errors")
    click.echo("; ".join(parts))


def _rate(agreed: int, graded: int) -> str:
    return f"{agreed / graded:.0%} ({agreed}/{graded})" if graded else "n/a (0 graded)"


@click.command("audit")
@click.option("--json", "as_json", is_flag=True,
              help='{"routes": [{"route", "feature", "sampled", "judged", "agreement_rate", ...}]}')
@click.option("--since", default="all", show_default=True, help="1d, 7d, 30d or all.")
@click.option("--profile", default=None, help="Profile (for its audit: settings).")
def audit(as_json: bool, since: str, profile: str | None) -> None:
    """Judge sampling: agreement of local answers with the production model, per route."""
    settings, _prof = load(profile)
    try:
        seconds = period_seconds(since)
    except ValueError as exc:
        fail(str(exc))
    routes: list[dict[str, object]] = []
    if settings.db_path.exists():
        from devloop.store.audit import audit_report

        conn = connect(settings.db_path)
        try:
            routes = audit_report(conn, time.time() - seconds if seconds else None)
        finally:
            conn.close()
    if as_json:
        click.echo(json.dumps({"routes": routes}, indent=2))
        return
    if not routes:
        click.echo("no sampled calls yet (set `audit: {sample: 0.02}` in the profile)")
        return
    click.echo(f"{'route':<12} {'feature':<20} {'sampled':>7} {'judged':>6} {'agree':>6} "
               f"{'errors':>6} {'cost':>10}")
    for r in routes:
        rate = r["agreement_rate"]
        click.echo(f"{r['route']!s:<12} {r['feature']!s:<20} {r['sampled']:>7} {r['judged']:>6} "
                   f"{'-' if rate is None else f'{rate:.0%}':>6} {r['errors']:>6} "
                   f"{format_usd(r['cost_usd']):>10}")  # type: ignore[arg-type]
