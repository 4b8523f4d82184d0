"""The promotion ladder of each eval set, and eval runs, as the TUI shows them (no Textual).

The stage tables (``prompt_checks``, ``eval_runs``, ``promotions`` and a per-case table) are
written by `devloop check` and `devloop eval`. They are read by column introspection so this
view tolerates their absence ("not run") and small differences in their shape.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devloop.config import ConfigError
from devloop.tui.data import LedgerReader
from devloop.tui.formatting import percent, short_usd, tokens

STAGES = ("draft", "compression", "cache_order", "eval", "promoted")
CHECK_STAGES = ("draft", "compression", "cache_order")  # what `devloop check` runs
STAGE_TITLES = {"draft": "draft", "compression": "compress", "cache_order": "cache-order",
                "eval": "eval", "promoted": "promoted"}
NOT_RUN = "not run"
STALE = "stale"
CASE_TABLES = ("eval_results", "eval_cases", "eval_case_results")
JSON_COLUMNS = ("result_json", "stages", "result", "report", "json", "data", "detail")
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
    from devloop.evals.evalset import load_evalset

    try:
        es = load_evalset(path)
    except ConfigError as exc:
        return EvalsetInfo(path, path.stem, error=f"{exc.field}: {exc.reason}".strip(": "))
    except Exception as exc:  # noqa: BLE001 - a half-written file must not take the screen down
        return EvalsetInfo(path, path.stem, error=f"{type(exc).__name__}: {exc}")
    return EvalsetInfo(path, es.name, len(es.cases), es.prompt_hash, es.production_model,
                       es.threshold, es.max_tokens)


def _pick(columns: list[str], *names: str) -> str | None:
    return next((n for n in names if n in columns), None)


def _order(columns: list[str]) -> str:
    col = _pick(columns, "ts", "created", "created_at", "finished", "started")
    return f"[{col}] DESC, rowid DESC" if col else "rowid DESC"


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


def _stage_key(name: str) -> str:
    return name.replace("-", "_").lower()


def _from_row(row: dict[str, Any], json_col: str | None) -> dict[str, Any]:
    detail = _loads(row.get(json_col)) if json_col else None
    return detail if isinstance(detail, dict) else {}


def read_checks(reader: LedgerReader, info: EvalsetInfo, tables: set[str]) -> None:
    """Fill the draft, compression and cache-order stages from ``prompt_checks``."""
    if "prompt_checks" not in tables or not info.prompt_hash:
        return
    cols = reader.columns("prompt_checks")
    if "prompt_hash" not in cols:
        return
    ts_col = _pick(cols, "ts", "created", "created_at") or ""
    json_col = _pick(cols, *JSON_COLUMNS)
    rows = [dict(r) for r in reader.query(
        f"SELECT * FROM prompt_checks WHERE prompt_hash = ? ORDER BY {_order(cols)} LIMIT 50",
        [info.prompt_hash])]
    if "stage" in cols:  # one row per stage: the newest of each wins
        for row in reversed(rows):
            key = _stage_key(str(row["stage"]))
            if key in info.stages:
                detail = _from_row(row, json_col)
                status = str(row.get("status") or detail.get("status") or "done")
                info.stages[key] = Stage(status, _stage_summary(key, detail), row.get(ts_col),
                                         detail)
    elif rows:  # one row per check run, the stages in a JSON document or in columns
        row = rows[0]
        doc = _from_row(row, json_col)
        stages = doc.get("stages", doc)
        for key in CHECK_STAGES:
            found = stages.get(key) or stages.get(key.replace("_", "-"))
            if isinstance(found, dict):
                info.stages[key] = Stage(str(found.get("status", "done")),
                                         _stage_summary(key, found), row.get(ts_col), found)
            elif row.get(f"{key}_status"):
                info.stages[key] = Stage(str(row[f"{key}_status"]), "", row.get(ts_col))
    missing = tuple(k for k in CHECK_STAGES if info.stages[k].status == NOT_RUN)
    if missing:
        _mark_stale(reader, info, "prompt_checks", cols, missing)


def _mark_stale(reader: LedgerReader, info: EvalsetInfo, table: str, cols: list[str],
                stages: tuple[str, ...]) -> None:
    """Results exist for this file but for an earlier prompt: the prompt changed since."""
    file_col = _pick(cols, "file", "path", "evalset_path")
    if not file_col or "prompt_hash" not in cols:
        return
    candidates = sorted({str(info.path), str(info.path.resolve()), display_path(info.path)})
    marks = ", ".join("?" for _ in candidates)
    found = reader.one(f"SELECT 1 FROM [{table}] WHERE [{file_col}] IN ({marks}) "
                       "AND prompt_hash != ? LIMIT 1", [*candidates, info.prompt_hash])
    if found:
        for key in stages:
            info.stages[key] = Stage(STALE, "prompt changed since the last run")


def display_path(path: Path) -> str:
    """How `devloop check`/`eval` name a file in the database: relative to the working folder
    when inside it, else absolute (as devloop.pipeline.checker.display_path)."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


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
    for key in ("ok", "gate_passed", "status"):
        value = run.get(key)
        if value is not None:
            return value in (1, True, "pass", "passed", "ok")
    return None


def read_eval(reader: LedgerReader, info: EvalsetInfo, tables: set[str]) -> None:
    """The eval and promoted stages, from ``eval_runs`` and ``promotions``."""
    if "eval_runs" in tables and info.prompt_hash:
        cols = reader.columns("eval_runs")
        if "prompt_hash" in cols:
            row = reader.one(f"SELECT * FROM eval_runs WHERE prompt_hash = ? ORDER BY "
                             f"{_order(cols)} LIMIT 1", [info.prompt_hash])
            if row is None:
                _mark_stale(reader, info, "eval_runs", cols, ("eval",))
            else:
                run = normalise_run(dict(row), cols)
                status = run_status(run)
                info.stages["eval"] = Stage(
                    status, f"{percent(run['pass_rate'])} {short_usd(run['cost_usd'])}".strip(),
                    run["ts"], run)
    if "promotions" in tables and info.prompt_hash:
        cols = reader.columns("promotions")
        if "prompt_hash" in cols:
            row = reader.one(f"SELECT * FROM promotions WHERE prompt_hash = ? ORDER BY "
                             f"{_order(cols)} LIMIT 1", [info.prompt_hash])
            if row is not None:
                ts_col = _pick(cols, "ts", "created", "created_at")
                info.stages["promoted"] = Stage("pass", "promoted",
                                                row[ts_col] if ts_col else None, dict(row))
                return
    promoted = _file_promotion(info)
    if promoted is not None:  # devloop.promotions.json, committed beside the eval sets
        info.stages["promoted"] = Stage("pass", "in devloop.promotions.json", None, promoted)
    elif "promotions" not in tables and info.stages["eval"].status == "pass":
        info.stages["promoted"] = Stage("pass", "eval passed", info.stages["eval"].ts)


def _file_promotion(info: EvalsetInfo) -> dict[str, Any] | None:
    if not info.prompt_hash:
        return None
    try:
        from devloop.evals.store import promotions_path, read_promotions
    except ImportError:
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
def normalise_run(row: dict[str, Any], cols: list[str]) -> dict[str, Any]:
    name_col = _pick(cols, "evalset", "name", "evalset_name", "file", "path")
    name = row.get(name_col) if name_col else None
    if name and name_col in ("file", "path"):
        name = Path(str(name)).stem
    out = dict(row)
    out.update(
        id=row.get("id", row.get("run_id")),
        ts=row.get(_pick(cols, "ts", "created", "created_at", "finished", "started") or ""),
        name=name or "?",
        model=row.get("model"),
        pass_rate=row.get("pass_rate"),
        threshold=row.get("threshold"),
        cost_usd=row.get("cost_usd"),
        passed=row.get("passed"),
        failed=row.get("failed"),
        prompt_hash=row.get("prompt_hash"),
    )
    return out


def list_runs(reader: LedgerReader, limit: int = 200) -> list[dict[str, Any]] | None:
    """Newest runs first; None when no eval has ever been run (the table is absent)."""
    if "eval_runs" not in reader.tables():
        return None
    cols = reader.columns("eval_runs")
    rows = reader.query(f"SELECT * FROM eval_runs ORDER BY {_order(cols)} LIMIT ?", [limit])
    return [normalise_run(dict(r), cols) for r in rows]


def run_cases(reader: LedgerReader, run_id: Any) -> list[dict[str, Any]]:
    tables = reader.tables()
    table = next((t for t in CASE_TABLES if t in tables), None)
    if table is None or run_id is None:
        return []
    cols = reader.columns(table)
    fk = _pick(cols, "run_id", "eval_run_id", "run")
    if fk is None:
        return []
    id_col = _pick(cols, "case_id", "case", "name", "id")
    pass_col = _pick(cols, "pass", "passed", "ok")
    rows = reader.query(f"SELECT * FROM [{table}] WHERE [{fk}] = ? ORDER BY rowid LIMIT 1000",
                        [run_id])
    out = []
    for r in rows:
        d = dict(r)
        out.append({"id": d.get(id_col or ""), "pass": d.get(pass_col or ""),
                    "reason": d.get("reason") or d.get("error") or "",
                    "cost_usd": d.get("cost_usd"), "cached": d.get("cached"),
                    "output": d.get("output")})
    return out


@dataclass(slots=True)
class EvalEstimate:
    name: str
    model: str
    cases: int
    cached: int  # answered from earlier results: free
    cost_usd: float | None  # worst case; None when the model has no known price


def estimate_eval(path: Path, profile: Any, db_path: Path) -> EvalEstimate:
    """What `devloop eval` would spend at most: its own plan (cache lookups included)."""
    from devloop.evals.evalset import load_evalset
    from devloop.evals.runner import RunOptions, make_plan
    from devloop.evals.store import EvalStore
    from devloop.pricing import Pricing

    evalset = load_evalset(path)
    store = EvalStore(db_path)
    try:
        plan = make_plan(evalset, RunOptions(), profile, store, Pricing(profile))
    finally:
        store.close()
    cached = len(plan.items) - len(plan.to_run)
    return EvalEstimate(evalset.name, plan.model, len(plan.items), cached, plan.estimate_usd)
