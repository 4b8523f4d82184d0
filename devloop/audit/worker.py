"""The judge worker: replays sampled calls on the production tier and asks a judge.

Started by the server's lifespan (devloop/background.py) when the profile has ``audit:``.
Each round takes the pending samples, replays each request on ``replay_on`` (default: the
frontier tier) and asks ``judge`` (default: the same tier) whether the local answer agrees
with the production one, using the profile's ``rubric``. A judge reply that is not a
verdict is an error (never a disagreement); so is a replay or judge call that fails.
What replays and verdicts cost is stored with the sample and capped by ``audit.usd`` a
``audit.period``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from devloop.audit.sampler import period_start
from devloop.audit.verdict import parse_verdict
from devloop.backends import BackendError
from devloop.store.audit import Sample, audit_report, pending, spent_since, verdict_job
from devloop.types import ChatRequest, Completion, Message

Gateway = Any  # the gateway's type (it imports devloop.audit: no import cycle)

log = logging.getLogger("devloop.audit")
DEFAULT_RUBRIC = (
    "Two assistants answered the same request. Do the two answers agree: same facts, same "
    "conclusion, and is the first answer at least as correct and useful as the reference?")
JUDGE_FORMAT = (
    "{rubric}\n\nRequest:\n{request}\n\nAnswer under review:\n{local}\n\nReference answer:\n"
    "{reference}\n\nReply with a JSON object {{\"verdict\": \"agree\"}} or "
    "{{\"verdict\": \"disagree\"}} and nothing else.")


def default_production_tier(tiers: list[str]) -> str:
    return "frontier" if "frontier" in tiers else tiers[-1]


class AuditWorker:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        cfg = gw.profile.audit
        assert cfg is not None
        self.config = cfg
        self.replay_on = cfg.replay_on or default_production_tier(list(gw.profile.tiers))
        self.judge = cfg.judge or self.replay_on
        self.rounds = 0
        from prometheus_client import Gauge

        self.gauges = {name: Gauge(f"devloop_audit_{name}", text, ("route", "feature"),
                                   registry=gw.metrics.registry)
                       for name, text in (("agreement_rate", "Judge agreement of sampled calls"),
                                          ("judged", "Sampled calls with a verdict"),
                                          ("errors", "Sampled calls the judge could not grade"))}

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.run_round()
            except Exception:  # the worker must outlive one bad round
                log.exception("audit round failed")

    async def run_round(self) -> int:
        """Judge what is pending; returns how many samples got a verdict or an error."""
        self.rounds += 1
        done = 0
        for sample in pending(self.gw.read_conn):
            if spent_since(self.gw.read_conn, period_start(self.config.period)) >= \
                    self.config.usd:
                log.info("audit budget spent; samples wait for the next period")
                break
            await self.judge_one(sample)
            done += 1
        if done:
            self.export()
        return done

    def export(self) -> None:
        """The `devloop audit` figures as /metrics gauges."""
        for row in audit_report(self.gw.read_conn):
            labels = (row["route"], row["feature"])
            for name, gauge in self.gauges.items():
                if row[name] is not None:
                    gauge.labels(*labels).set(row[name])

    async def _ask(self, tier: str, req: ChatRequest) -> tuple[Completion, float | None]:
        backend = self.gw.router.backends[tier]
        model = self.gw.profile.tiers[tier].model
        c = await backend.chat(req, model, None)
        u = c.usage
        return c, self.gw.pricing.tier_cost(tier, model, u.prompt_tokens, u.completion_tokens,
                                            u.cached_tokens)

    async def judge_one(self, s: Sample) -> None:
        cost = 0.0
        replay_text = judge_text = None
        try:
            data = json.loads(s.request_json)
            data.update(stream=False, stream_options=None)
            req = ChatRequest.model_validate(data)
            replay, c1 = await self._ask(self.replay_on, req)
            replay_text = replay.text
            cost += c1 or 0.0
            ask = ChatRequest(model=self.judge, temperature=0.0, max_tokens=64, messages=[
                Message(role="user", content=JUDGE_FORMAT.format(
                    rubric=self.config.rubric or DEFAULT_RUBRIC, request=req.prompt_text(),
                    local=s.response_text, reference=replay.text))])
            verdict, c2 = await self._ask(self.judge, ask)
            judge_text = verdict.text
            cost += c2 or 0.0
        except (BackendError, ValueError) as exc:
            await self.gw.writer.run(verdict_job(s.request_id, None, f"{type(exc).__name__}: "
                                                 f"{exc}"[:300], replay_text, judge_text, cost))
            return
        agree = parse_verdict(judge_text)
        error = None if agree is not None else f"unparseable verdict: {judge_text[:120]!r}"
        await self.gw.writer.run(verdict_job(s.request_id, agree, error, replay_text,
                                             judge_text, cost))
