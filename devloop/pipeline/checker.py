"""Runs stages 1 to 3 for one eval set file and stores each result against its prompt hash.

One ``Checker`` per process (the CLI's ``check``, the watcher, the TUI): it owns the
in-process Gateway for the draft stage and the lazily loaded LLMLingua compressor, so a
second check of the same file pays for neither again. Results go to the ``prompt_checks``
table (devloop.store.checks) through the Gateway's single DB writer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from devloop.config import Profile, Settings
from devloop.evals.evalset import EvalSet
from devloop.evals.files import load_one as load_evalset
from devloop.paths import display_path
from devloop.pipeline.cache_order import CacheOrderResult, analyse_cache_order
from devloop.pipeline.cache_prices import cache_pricing
from devloop.pipeline.compression import analyse_compression
from devloop.pipeline.compression_parts import ProtectedCompressor
from devloop.pipeline.draft import DraftResult, Grader, run_draft
from devloop.pipeline.grading import default_grader
from devloop.pipeline.lingua import CompressorUnavailable, LinguaCompressor
from devloop.pipeline.providers import ModelTokenizer
from devloop.pipeline.rates import DEFAULT_CALLS_PER_HOUR
from devloop.store.checks import insert_check, latest_checks
from devloop.store.compressions import CompressionCache, promoted
from devloop.tokens import TiktokenCounter, Tokenizer

STAGES: tuple[str, ...] = ("draft", "compression", "cache_order")
# The order they run in: the cache-order analysis always runs first, whatever stages are
# asked (compression prices its savings with it), so the advice is the same for any --stage.
RUN_ORDER: tuple[str, ...] = ("cache_order", "draft", "compression")

# The keys DESIGN.md fixes for `devloop check --json`: always present (null when not run).
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "draft": ("status", "pass_rate", "would_cost_usd"),
    "compression": ("status", "origin_tokens", "compressed_tokens", "saved_usd_per_1k_calls",
                    "recommendation", "reasons"),
    "cache_order": ("status", "cacheable_prefix_tokens", "min_cacheable_tokens",
                    "dynamic_before_static", "reordered_prefix_tokens", "cost_per_1k_calls_usd",
                    "reordered_cost_per_1k_calls_usd"),
}

StageCallback = Callable[["CheckReport", str], None]


class StageError(BaseModel):
    status: str = "error"
    error: str


class CheckReport(BaseModel):
    file: str
    name: str
    prompt_hash: str
    production_model: str
    stages: dict[str, Any] = Field(default_factory=dict)  # stage -> result model
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The `devloop check --json` object (keys fixed by DESIGN.md), extras after them."""
        out: dict[str, Any] = {"file": self.file, "prompt_hash": self.prompt_hash,
                               "name": self.name, "production_model": self.production_model,
                               "stages": {}}
        for stage in STAGES:
            result = self.stages.get(stage)
            body = {key: None for key in STAGE_KEYS[stage]}
            body["status"] = "skipped"
            if result is not None:
                body.update(result.model_dump(mode="json"))
            out["stages"][stage] = body
        return out

    def worst_status(self) -> str:
        order = ["pass", "skipped", "warn", "fail", "error"]
        statuses = [getattr(r, "status", "error") for r in self.stages.values()]
        return max(statuses, key=order.index, default="skipped")


class Checker:
    def __init__(self, settings: Settings, profile: Profile, *, gateway: Any = None,
                 compressor: LinguaCompressor | None = None, tokenizer: Tokenizer | None = None,
                 grader: Grader | None = None, store: bool = True,
                 calls_per_hour: float = DEFAULT_CALLS_PER_HOUR) -> None:
        self.settings = settings
        self.profile = profile
        self.gateway = gateway
        self._own_gateway = gateway is None
        self.compressor = compressor or LinguaCompressor(settings.home)
        self._tokenizer = tokenizer
        self.grader = grader
        self.store = store
        self.calls_per_hour = calls_per_hour
        self.on_progress: Callable[[str], None] | None = None  # a line per draft step

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = TiktokenCounter()
        return self._tokenizer

    async def start(self, probe: bool = False) -> None:
        if self.gateway is None:
            from devloop.gateway import Gateway

            self.gateway = Gateway(self.settings, self.profile, store=self.store)
            await self.gateway.start(probe=probe)
        if self.grader is None:
            self.grader = default_grader(self.gateway)

    async def close(self) -> None:
        if self._own_gateway and self.gateway is not None:
            await self.gateway.close()
            self.gateway = None

    async def check_file(self, path: str | Path, stages: Sequence[str] = STAGES,
                         on_stage: StageCallback | None = None) -> CheckReport:
        """Stages 1 to 3 for one file. A bad file raises ConfigError; a failing stage is
        reported as status "error" and the other stages still run."""
        evalset = load_evalset(path)
        return await self.check_evalset(evalset, display_path(path), stages, on_stage)

    async def check_evalset(self, evalset: EvalSet, file: str, stages: Sequence[str] = STAGES,
                            on_stage: StageCallback | None = None) -> CheckReport:
        if self.gateway is None and ("draft" in stages or self.store):
            await self.start()  # only the draft and the stored results need the gateway
        started = time.perf_counter()
        model = evalset.model_for(self.profile.production_model)
        report = CheckReport(file=file, name=evalset.name, prompt_hash=evalset.prompt_hash,
                             production_model=model)
        for stage in RUN_ORDER:
            # The cache-order analysis runs whatever is asked: compression depends on it.
            needed = stage in stages or (stage == "cache_order" and "compression" in stages)
            if not needed:
                continue
            try:
                result = await self._run_stage(stage, evalset, report, model)
            except CompressorUnavailable as exc:
                result = StageError(error=str(exc))
            except Exception as exc:  # one failing stage must not stop the others or `watch`
                result = StageError(error=f"{type(exc).__name__}: {exc}"[:500])
            report.stages[stage] = result
            if stage not in stages:
                continue
            await self._store(report, stage, result)
            if on_stage is not None:
                on_stage(report, stage)
        for stage in list(report.stages):
            if stage not in stages:
                del report.stages[stage]
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    async def _run_stage(self, stage: str, evalset: EvalSet, report: CheckReport,
                         model: str) -> BaseModel:
        if stage == "draft":
            assert self.gateway is not None and self.grader is not None
            return await run_draft(evalset, self.gateway, self.grader, production_model=model,
                                   progress=self.on_progress)
        pricing = cache_pricing(self.profile, model)
        draft = report.stages.get("draft")
        model_tokenizer = ModelTokenizer(model)
        if stage == "cache_order":
            return await asyncio.to_thread(analyse_cache_order, evalset, pricing,
                                           model_tokenizer, production_model=model,
                                           calls_per_hour=self.calls_per_hour)
        cache = report.stages.get("cache_order")
        if not isinstance(cache, CacheOrderResult):
            raise RuntimeError("the cache-order analysis failed, so savings cannot be priced: "
                               f"{getattr(cache, 'error', cache)}")
        baseline = draft.pass_rate if isinstance(draft, DraftResult) else None
        grader, gateway = self.grader, self.gateway

        async def rerun(compressed: EvalSet) -> float | None:
            if not isinstance(draft, DraftResult) or gateway is None or grader is None:
                return None
            result = await run_draft(compressed, gateway, grader, production_model=model,
                                     feature=f"check:{evalset.name}:compressed")
            return result.pass_rate

        db_path = self.settings.db_path
        compressor = ProtectedCompressor(
            self.compressor, model_tokenizer, CompressionCache(db_path) if self.store else None)
        return await analyse_compression(
            evalset, compressor, model_tokenizer, pricing, cache, rerun, baseline,
            validated=lambda prompt_hash: promoted(db_path, prompt_hash, model))

    async def _store(self, report: CheckReport, stage: str, result: BaseModel) -> None:
        if not self.store or self.gateway is None:
            return
        row = {"prompt_hash": report.prompt_hash, "file": report.file, "name": report.name,
               "stage": stage, "status": getattr(result, "status", "error"),
               "result_json": result.model_dump_json(), "created": time.time()}
        await asyncio.wrap_future(insert_check(self.gateway.writer, row))

    async def mark_stale(self, file: str, name: str, prompt_hash: str, previous: str) -> None:
        """Record that ``file``'s prompt changed, so its last eval no longer applies."""
        if not self.store or self.gateway is None:
            return
        row = {"prompt_hash": prompt_hash, "file": file, "name": name, "stage": "eval",
               "status": "stale", "created": time.time(),
               "result_json": json.dumps({"previous_prompt_hash": previous})}
        await asyncio.wrap_future(insert_check(self.gateway.writer, row))


def last_prompt_hash(db_path: Path, file: str) -> str | None:
    rows = [r for r in latest_checks(db_path, file=file) if r["stage"] in STAGES]
    return max(rows, key=lambda r: r["created"])["prompt_hash"] if rows else None

