"""The promotion ladder of each eval set, and eval runs, as the TUI shows them (no Textual).

The stage tables (``prompt_checks``, ``eval_runs``, ``eval_results``, ``promotions``) are
written by `devloop check` and `devloop eval`; their reads live in devloop.store.checks and
devloop.store.evals. A database no check or eval has touched shows every stage "not run".
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devloop.config import ConfigError
from devloop.evals.promotions import promotions_path, read_promotions
from devloop.paths import display_path
from devloop.store.checks import checks_for_prompt, other_prompt_recorded
from devloop.store.evals import latest_run, promotion_of, recent_runs, run_results
from devloop.store.reports import LedgerReader
from devloop.tui.formatting import percent, short_usd, tokens

STAGES = ("draft", "compression", "cache_order", "eval", "promoted")
CHECK_STAGES = ("draft", "compression", "cache_order")  # what `devloop check` runs
STAGE_TITLES = {"draft": "draft", "compression": "compress", "cache_order": "cache-order",
                "eval": "eval", "promoted": "promoted"}
NOT_RUN = "not run"
STALE = "stale"
RUN_STATUSES = ("pass", "fail", "error")


@dataclass(slots=True)
class Stage:
    status: str = NOT_RUN  # pass, warn, fail, error, skipped, not run, stale
    summary: str = ""
    ts: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class EvalsetInfo:
    path: Path
    name: str
    cases: int = 0
    prompt_hash: str | None = None
    production_model: str | None = None
    threshold: float | None = None
    max_tokens: int | None = None
    error: str | None = None
    stages: dict[str, Stage] = field(default_factory=lambda: {s: Stage() for s in STAGES})


def list_evalset_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def read_evalset(path: Path) -> EvalsetInfo:
    """Parse one eval set file; a bad file becomes a row that says why, not an exception."""
    from devloop.evals.files import load_one as load_evalset

    try:
        es = load_evalset(path)
    except ConfigError as exc:
        return EvalsetInfo(path, path.stem, error=f"{exc.field}: {exc.reason}".strip(": "))
    except Exception as exc:  # noqa: BLE001 - a half-written file must not take the screen down
        return EvalsetInfo(path, path.stem, error=f"{type(exc).__name__}: {exc}")
    return EvalsetInfo(path, es.name, len(es.cases), es.prompt_hash, es.production_model,
                       es.threshold, es.max_tokens)


def _loads(value: Any) -> Any:
    if isinstance(value, str | bytes):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _stage_summary(stage: str, d: dict[str, Any]) -> str:
    if stage == "draft" and d.get("pass_rate") is not None:
        return f"{percent(d['pass_rate'])} pass"
    if stage == "compression" and d.get("saved_usd_per_1k_calls") is not None:
        return f"{d.get('recommendation', '')} {short_usd(d['saved_usd_per_1k_calls'])}/1k".strip()
    if stage == "cache_order" and d.get("cacheable_prefix_tokens") is not None:
        return f"prefix {tokens(d['cacheable_prefix_tokens'])} tok"
    return ""


def read_checks(reader: LedgerReader, info: EvalsetInfo, tables: set[str]) -> None:
    """Fill the draft, compression and cache-order stages from ``prompt_checks``."""
    if "prompt_checks" not in tables or not info.prompt_hash:
        return
    for row in reversed(checks_for_prompt(reader, info.prompt_hash)):  # the newest wins
        key = str(row["stage"])
        if key in info.stages:
            detail = _loads(row["result_json"])
            detail = detail if isinstance(detail, dict) else {}
            status = str(row["status"] or detail.get("status") or "done")
            info.stages[key] = Stage(status, _stage_summary(key, detail), row["created"], detail)
    missing = tuple(k for k in CHECK_STAGES if info.stages[k].status == NOT_RUN)
    if missing:
        _mark_stale(reader, info, "prompt_checks", missing)


def _mark_stale(reader: LedgerReader, info: EvalsetInfo, table: str,
                stages: tuple[str, ...]) -> None:
    """Results exist for this file but for an earlier prompt: the prompt changed since."""
    assert info.prompt_hash is not None
    files = sorted({str(info.path), str(info.path.resolve()), display_path(info.path)})
    if other_prompt_recorded(reader, table, files, info.prompt_hash):
        for key in stages:
            info.stages[key] = Stage(STALE, "prompt changed since the last run")


def run_status(run: dict[str, Any]) -> str:
    """pass, fail or error (a run whose model calls failed for good), else done."""
    if run.get("status") in RUN_STATUSES:
        return str(run["status"])
    passed = run_passed(run)
    return "pass" if passed else "fail" if passed is False else "done"


def run_passed(run: dict[str, Any]) -> bool | None:
    if run.get("status") in RUN_STATUSES:
        return run["status"] == "pass"
    if run.get("pass_rate") is not None and run.get("threshold") is not None:
        return float(run["pass_rate"]) >= float(run["threshold"])
    return None


def read_eval(reader: LedgerReader, info: EvalsetInfo, tables: set[str]) -> None:
    """The eval and promoted stages, from ``eval_runs`` and ``promotions``."""
    if "eval_runs" in tables and info.prompt_hash:
        row = latest_run(reader, info.prompt_hash)
        if row is None:
            _mark_stale(reader, info, "eval_runs", ("eval",))
        else:
            run = normalise_run(row)
            info.stages["eval"] = Stage(
                run_status(run), f"{percent(run['pass_rate'])} {short_usd(run['cost_usd'])}".strip(),
                run["ts"], run)
    if "promotions" in tables and info.prompt_hash:
        row = promotion_of(reader, info.prompt_hash)
        if row is not None:
            info.stages["promoted"] = Stage("pass", "promoted", row["ts"], row)
            return
    promoted = _file_promotion(info)
    if promoted is not None:  # devloop.promotions.json, committed beside the eval sets
        info.stages["promoted"] = Stage("pass", "in devloop.promotions.json", None, promoted)
    elif "promotions" not in tables and info.stages["eval"].status == "pass":
        info.stages["promoted"] = Stage("pass", "eval passed", info.stages["eval"].ts)


def _file_promotion(info: EvalsetInfo) -> dict[str, Any] | None:
    if not info.prompt_hash:
        return None
    for entry in read_promotions(promotions_path(info.path)):
        if entry.get("prompt_hash") == info.prompt_hash:
            return entry
    return None


def load_ladder(reader: LedgerReader, path: Path) -> EvalsetInfo:
    info = read_evalset(path)
    if info.error is None:
        tables = reader.tables()
        read_checks(reader, info, tables)
        read_eval(reader, info, tables)
    return info


# -- eval runs (the Evals screen) --------------------------------------------------------------
def normalise_run(row: dict[str, Any]) -> dict[str, Any]:
    """An ``eval_runs`` row plus ``name`` (the eval set's, else its file's stem)."""
    name = row.get("evalset") or (Path(str(row["file"])).stem if row.get("file") else None)
    return {**row, "name": name or "?"}


def list_runs(reader: LedgerReader, limit: int = 200) -> list[dict[str, Any]] | None:
    """Newest runs first; None when no eval has ever been run (the table is absent)."""
    if "eval_runs" not in reader.tables():
        return None
    return [normalise_run(r) for r in recent_runs(reader, limit)]


def run_cases(reader: LedgerReader, run_id: Any) -> list[dict[str, Any]]:
    if run_id is None or "eval_results" not in reader.tables():
        return []
    return [{"id": d["case_id"], "pass": d["pass"], "reason": d["reason"] or d["error"] or "",
             "cost_usd": d["cost_usd"], "cached": d["cached"], "output": d["output"]}
            for d in run_results(reader, str(run_id))]


@dataclass(slots=True)
class EvalEstimate:
    name: str
    model: str
    cases: int
    cached: int  # answered from earlier results: free
    cost_usd: float | None  # worst case; None when the model has no known price


def estimate_eval(path: Path, profile: Any, db_path: Path) -> EvalEstimate:
    """What `devloop eval` would spend at most: its own plan (cache lookups included)."""
    from devloop.evals.files import load_one as load_evalset
    from devloop.evals.runner import RunOptions, make_plan
    from devloop.pricing import Pricing
    from devloop.store.evals import EvalStore

    evalset = load_evalset(path)
    store = EvalStore(db_path)
    try:
        plan = make_plan(evalset, RunOptions(), profile, store, Pricing(profile))
    finally:
        store.close()
    cached = len(plan.items) - len(plan.to_run)
    return EvalEstimate(evalset.name, plan.model, len(plan.items), cached, plan.estimate_usd)
