"""`devloop eval`: run eval sets on the production model, report, promote; `--gate` for CI.

Exit codes: 0 every eval set met its threshold (or, with --gate, every prompt hash is
promoted); 1 a pass rate below its threshold (or an unpromoted prompt with --gate); 2 an
error: a bad file or option, a model call that failed for good, or --max-cost refusing.

`--from-ledger` runs the routing audit instead (devloop.commands.audit): it replays stored
calls that local tiers served on the production model and grades agreement.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from devloop.commands._common import fail, load
from devloop.commands.batch_option import BatchOptionCommand
from devloop.config import ConfigError, Profile
from devloop.evals.plan import RunOptions
from devloop.money import format_usd

if TYPE_CHECKING:
    from devloop.evals.evalset import EvalSet
    from devloop.pricing import Pricing

GATE_HINT = "run `devloop eval {file}{model}` and commit devloop.promotions.json"



EXIT_CODES = ("Exit status: 0 every eval set met its threshold (with --gate: every prompt "
              "hash is promoted); 1 a pass rate below its threshold (with --gate: a prompt "
              "not promoted); 2 a bad file or option, a model call that failed for good, "
              "or --max-cost refusing.")

def _echo_err(text: str) -> None:
    click.echo(text, err=True)


@click.command("eval", cls=BatchOptionCommand, epilog=EXIT_CODES)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--model", default=None,
              help="Model to evaluate (litellm name); default: the eval set's production_model, "
                   "else the profile's.")
@click.option("--api-base", default=None,
              help="Base URL of an OpenAI-compatible server (e.g. devloop's .../v1).")
@click.option("--batch", "batch_mode", flag_value="on", default=None,
              help="Submit the cases through the provider's Batch API (OpenAI, Anthropic) at "
                   "the batch price; --batch=auto runs synchronously where the provider has "
                   "none.")
@click.option("--batch-auto", "batch_mode", flag_value="auto", hidden=True)
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), default=None,
              help="Write a JUnit XML report here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON report here.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Pass rate needed (overrides the eval set's threshold); with "
                   "--from-ledger, the agreement rate needed (exit 1 below it).")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Refuse to start when the worst-case cost is above this.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Model calls in flight at once.")
@click.option("--gate", is_flag=True,
              help="Call nothing; exit 1 unless each prompt hash passed an eval on its model.")
@click.option("--profile", default=None, help="Profile (prices, production model).")
@click.option("--judge-model", "--judge", "judge_model", default=None,
              help="Model for llm-rubric and the audit's judge (default: --model).")
@click.option("--embedding-model", default=None, help="Model for similar (default: --model).")
@click.option("--no-cache", is_flag=True, help="Run every case even when a result is cached.")
@click.option("--retries", type=click.IntRange(min=0), default=4, show_default=True,
              help="Retries on 429, 5xx and connection errors (exponential backoff).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--from-ledger", is_flag=True,
              help="Routing audit: replay a seeded sample of the stored calls that local tiers "
                   "served (needs `store_bodies: true` in the profile) on the production model "
                   "and report how often the local answer agrees with the production answer.")
@click.option("--feature", default=None, help="[--from-ledger] Only calls of this feature "
                                              "(glob, e.g. 'chat-*').")
@click.option("--sample", default=None,
              help="[--from-ledger] How many calls to replay: N, or a share such as 2%. "
                   "[default: 50]")
@click.option("--since", default=None,
              help="[--from-ledger] Only calls this recent: 12h, 7d, 2w or all. [default: 7d]")
@click.option("--seed", type=int, default=None,
              help="[--from-ledger] Seed of the random sample. [default: 0]")
@click.option("--grader", type=click.Choice(["auto", "similar", "judge"]), default=None,
              help="[--from-ledger] How agreement is graded: similar = cosine of the two "
                   "answers' embeddings (cheap, needs an embedding model); judge = an "
                   "llm-rubric call asking whether the local answer is acceptable given the "
                   "production answer; auto = similar where --embedding-model (default "
                   "--model) can embed, else judge. [default: auto]")
@click.option("--min-similarity", type=click.FloatRange(0, 1), default=None,
              help="[--from-ledger] Cosine similarity at which answers agree. [default: 0.75]")
def eval_cmd(paths: tuple[str, ...], model: str | None, api_base: str | None,
             batch_mode: str | None,
             junit_file: str | None, json_file: str | None, threshold: float | None,
             max_cost: float | None, concurrency: int, gate: bool, profile: str | None,
             judge_model: str | None, embedding_model: str | None, no_cache: bool,
             retries: int, quiet: bool, from_ledger: bool, feature: str | None,
             sample: str | None, since: str | None, seed: int | None, grader: str | None,
             min_similarity: float | None) -> None:
    """Run eval sets (or promptfoo configs) on the production model through litellm.

    With --from-ledger, audit routing instead: replay stored local calls on the production
    model and report the agreement rate (with --threshold: exit 1 below it).
    """
    from devloop.evals.runner import load_targets

    batch = batch_mode is not None
    audit_only = {"--feature": feature, "--sample": sample, "--since": since, "--seed": seed,
                  "--grader": grader, "--min-similarity": min_similarity}
    if from_ledger:
        for name, used in (("eval set paths", paths), ("--batch", batch),
                           ("--junit", junit_file), ("--gate", gate)):
            if used:
                fail(f"--from-ledger: {name} cannot be used with --from-ledger")
        from devloop.commands.audit import LedgerArgs, run_from_ledger

        settings, prof = load(profile)
        sys.exit(run_from_ledger(settings, prof, LedgerArgs(
            model=model, api_base=api_base, feature=feature, sample=sample, since=since,
            seed=seed, grader=grader, judge_model=judge_model, embedding_model=embedding_model,
            min_similarity=min_similarity, threshold=threshold, max_cost=max_cost,
            concurrency=concurrency, retries=retries, json_file=json_file, quiet=quiet)))
    for name, value in audit_only.items():
        if value is not None:
            fail(f"{name} needs --from-ledger")
    if not paths:
        paths = ("evalsets",)  # like check and watch
    settings, prof = load(profile)
    opts = RunOptions(model=model, api_base=api_base, threshold=threshold, max_cost=max_cost,
                      concurrency=concurrency, batch=batch, judge_model=judge_model,
                      embedding_model=embedding_model, max_retries=retries,
                      use_cache=not no_cache, progress=not quiet,
                      db_path=settings.db_path if batch else None)
    try:
        evalsets = load_targets(list(paths))
    except ConfigError as exc:
        fail(str(exc))
        return
    for es in evalsets:
        for warning in es.warnings():
            _echo_err(f"devloop: warning: {warning}")
    if gate:
        sys.exit(_gate(evalsets, opts, prof, settings.db_path))
    if batch:
        from devloop.commands.batches import batch_setup

        pricing = batch_setup(evalsets, opts, prof, batch_mode == "auto", _echo_err)
    else:
        pricing = None
    sys.exit(_run(evalsets, opts, prof, settings.db_path, json_file, junit_file, pricing))


def _gate(evalsets: list[EvalSet], opts: RunOptions, prof: Profile, db_path: Path) -> int:
    from devloop.evals.runner import gate
    from devloop.store.evals import EvalStore

    store = EvalStore(db_path) if db_path.exists() else None
    try:
        results = gate(evalsets, opts, prof, store)
    finally:
        if store is not None:
            store.close()
    for r in results:
        if r.promoted:
            click.echo(f"{r.evalset}: content {r.content_hash[:12]} passed on {r.model} "
                       f"({r.where})")
        else:
            model = "" if r.model is None else f" --model {r.model}"
            click.echo(f"{r.evalset}: not promoted for {r.model}: " + "; ".join(r.problems)
                       + "; " + GATE_HINT.format(file=r.file or r.evalset, model=model))
    return 0 if all(r.promoted for r in results) else 1


def _run(evalsets: list[EvalSet], opts: RunOptions, prof: Profile, db_path: Path,
         json_file: str | None, junit_file: str | None, batch_pricing: Pricing | None = None
         ) -> int:
    from devloop.evals.client import EvalCallError
    from devloop.evals.report import summary, table, write_json, write_junit
    from devloop.evals.runner import make_plan, record, run_plans, total_estimate
    from devloop.pricing import Pricing
    from devloop.store.evals import EvalStore

    pricing = batch_pricing or Pricing(prof)
    store = EvalStore(db_path)
    try:
        plans = [make_plan(es, opts, prof, store, pricing) for es in evalsets]
        from devloop.evals.preflight import credential_problems

        for problem in credential_problems(plans):
            fail(f"eval: {problem}")
        estimate = total_estimate(plans)
        to_run = sum(len(p.to_run) for p in plans)
        cached = sum(len(p.items) for p in plans) - to_run
        if opts.progress:
            models = ", ".join(sorted({p.model for p in plans}))
            _echo_err(f"eval: {to_run} cases to run on {models}, {cached} from cache; "
                      f"worst-case cost {format_usd(estimate)}" if to_run else
                      f"eval: all {cached} cases from cache; nothing to spend")
        max_cost = opts.max_cost
        if max_cost is not None and to_run:
            if estimate is None:
                unpriced = ", ".join(sorted({m for p in plans for m in p.unpriced}))
                fail(f"--max-cost: cannot estimate the cost: no price for {unpriced} (set "
                     "prices: in the profile); nothing was called")
            elif estimate > max_cost:
                fail(f"--max-cost: worst-case cost {format_usd(estimate)} is above "
                     f"${max_cost:g}; nothing was called")
        runs = asyncio.run(run_plans(plans, opts, pricing))
        warnings = [w for plan, run in zip(plans, runs, strict=True)
                    if (w := record(store, plan, run))]
    except ConfigError as exc:
        fail(str(exc))
        return 2
    except EvalCallError as exc:
        fail(f"eval: {exc}")
        return 2
    finally:
        store.close()
    for warning in warnings:
        _echo_err(f"devloop: warning: {warning}")
    for run in runs:
        click.echo(table(run))
        click.echo(summary(run))
        errors = list(dict.fromkeys(c.error for c in run.cases if c.error))
        for error in errors[:3]:  # the table cuts reasons short; say each error in full once
            _echo_err(f"devloop: error: {run.evalset}: {error}")
    try:
        if json_file:
            write_json(Path(json_file), runs)
        if junit_file:
            write_junit(Path(junit_file), runs)
    except OSError as exc:
        fail(f"cannot write report: {exc.filename}: {exc.strerror}")
    if any(r.status == "error" for r in runs):
        return 2
    return 0 if all(r.status == "pass" for r in runs) else 1
