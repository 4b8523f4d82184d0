"""`devloop check` and `devloop watch` over devloop.pipeline (registered lazily by devloop.cli)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from devloop.commands._common import fail, load
from devloop.config import ConfigError
from devloop.evals.evalset import find_evalsets
from devloop.evals.files import load_one as load_evalset
from devloop.paths import display_path
from devloop.pipeline.checker import STAGES, Checker, CheckReport
from devloop.pipeline.rates import DEFAULT_CALLS_PER_HOUR
from devloop.pipeline.report import render_report, render_stage
from devloop.pipeline.watch import EvalsetWatcher, WatchEvent

DEFAULT_FOLDER = "evalsets"


def _stage_list(only: tuple[str, ...], skip: tuple[str, ...]) -> tuple[str, ...]:
    chosen = only or STAGES
    return tuple(s for s in STAGES if s in chosen and s not in skip)


def _resolve_files(paths: tuple[str, ...]) -> list[Path]:
    try:
        files = find_evalsets(paths or (DEFAULT_FOLDER,))
    except ConfigError as exc:
        fail(str(exc))
    if not files:
        fail(f"{', '.join(paths or (DEFAULT_FOLDER,))}: no eval set files (*.yaml) found")
    return files


async def _check_all(checker: Checker, files: list[Path], stages: tuple[str, ...],
                     progress: bool) -> list[CheckReport]:
    reports = []
    if "draft" in stages or checker.store:  # the gateway: for the draft and the DB writer
        await checker.start()
    if progress:
        checker.on_progress = lambda message: click.echo(f"  {message}", err=True)
    try:
        for path in files:
            if progress:
                click.echo(f"checking {display_path(path)} ...", err=True)
            reports.append(await checker.check_file(path, stages))
    finally:
        await checker.close()
    return reports


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per file.")
@click.option("--show-reordered", is_flag=True,
              help="Print the prompt reordered for caching (static first, dynamic last).")
@click.option("--profile", default=None, help="Profile name or YAML path.")
@click.option("--stage", "only", multiple=True, type=click.Choice(STAGES),
              help="Run only this stage (repeatable).")
@click.option("--skip", multiple=True, type=click.Choice(STAGES), help="Skip this stage.")
@click.option("--no-store", is_flag=True, help="Do not record the results in the database.")
@click.option("--calls-per-hour", type=click.FloatRange(min=0), default=DEFAULT_CALLS_PER_HOUR,
              show_default=True, help="Assumed call rate for the cache-hit model.")
def check(paths: tuple[str, ...], as_json: bool, show_reordered: bool, profile: str | None,
          only: tuple[str, ...], skip: tuple[str, ...], no_store: bool,
          calls_per_hour: float) -> None:
    """Run stages 1 to 3 (draft, compression, cache order) on eval set files.

    PATHS are files or folders of *.yaml (default: ./evalsets). Exit 0 when every stage
    ran (warnings included), 1 when a stage failed or errored, 2 on a bad file.
    """
    settings, prof = load(profile)
    files = _resolve_files(paths)
    try:  # refuse a bad file before any model is loaded
        for path in files:
            load_evalset(path)
    except ConfigError as exc:
        fail(str(exc))
    checker = Checker(settings, prof, store=not no_store, calls_per_hour=calls_per_hour)
    try:
        reports = asyncio.run(_check_all(checker, files, _stage_list(only, skip),
                                         progress=not as_json and sys.stderr.isatty()))
    except KeyboardInterrupt:
        sys.exit(130)
    if as_json:
        out: list[dict[str, Any]] = [r.to_json() for r in reports]
        click.echo(json.dumps(out, indent=2))
    else:
        for report in reports:
            click.echo(render_report(report, show_reordered=show_reordered))
    worst = {r.worst_status() for r in reports}
    sys.exit(1 if worst & {"fail", "error"} else 0)


def _print_event(event: WatchEvent, as_json: bool, show_reordered: bool) -> None:
    if as_json:
        click.echo(json.dumps(event.to_json()), nl=True)
        return
    stamp = f"[{_clock(event.ts)}]"
    if event.kind == "stage" and event.report is not None and event.stage:
        result = event.report.stages.get(event.stage)
        lines = render_stage(event.stage, result, show_reordered=show_reordered)
        click.echo(f"{stamp} {event.file}: " + lines[0])
        for line in lines[1:]:
            click.echo(" " * (len(stamp) + 1) + line)
    elif event.kind == "done":
        click.echo(f"{stamp} {event.file}: done in {event.message}")
    elif event.kind == "invalid":
        click.echo(f"{stamp} devloop: error: {event.message}")
    else:
        click.echo(f"{stamp} {event.file}: {event.kind}" +
                   (f": {event.message}" if event.message else ""))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _clock(ts: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ts))


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.option("--profile", default=None, help="Profile name or YAML path.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per event.")
@click.option("--debounce", type=float, default=0.3, show_default=True,
              help="Seconds to wait for a file to settle before re-checking it.")
@click.option("--stage", "only", multiple=True, type=click.Choice(STAGES))
@click.option("--skip", multiple=True, type=click.Choice(STAGES))
@click.option("--show-reordered", is_flag=True)
@click.option("--no-initial", is_flag=True, help="Do not check every file at start.")
def watch(path: str | None, profile: str | None, as_json: bool, debounce: float,
          only: tuple[str, ...], skip: tuple[str, ...], show_reordered: bool,
          no_initial: bool) -> None:
    """Re-run stages 1 to 3 whenever an eval set (or ./profiles) changes.

    PATH is an eval set file or a folder of them (default: ./evalsets). A changed prompt
    marks its last eval as stale.
    """
    settings, prof = load(profile)
    target = Path(path or DEFAULT_FOLDER)
    if not target.exists():
        fail(f"{target}: no such file or folder")
    if target.is_file():
        try:
            load_evalset(target)
        except ConfigError as exc:
            fail(str(exc))

    def on_event(event: WatchEvent) -> None:
        _print_event(event, as_json, show_reordered)
        sys.stdout.flush()

    # A terminated watcher closes like an interrupted one (the DB writer flushes).
    signal.signal(signal.SIGTERM, _interrupt)
    watcher = EvalsetWatcher(settings, prof, target, on_event, profile_name=profile,
                             debounce=debounce, stages=_stage_list(only, skip),
                             initial_run=not no_initial)
    try:
        watcher.start()
        watcher.wait()
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
