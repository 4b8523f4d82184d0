"""Alerts: rules over the ledger, evaluated on a schedule (server) or on demand (CLI).

Each rule compares the last 24 hours ("today") with the 7 days before it, or with a fixed
threshold; the profile's ``alerts:`` block overrides a rule's figures, disables rules and
names a webhook (Slack-compatible JSON: ``{"text": ...}``). An alert names the rule, the
scope, the figure, the threshold, since when, and where to look.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devloop.config import Profile
from devloop.store import alerts as q

Gateway = Any  # devloop.gateway.core.Gateway (it never imports this module)

log = logging.getLogger("devloop.alerts")
DAY = 86400.0
TRAILING_DAYS = 7


@dataclass(slots=True, frozen=True)
class RuleDefaults:
    factor: float | None = None
    below: float | None = None
    above: float | None = None
    usd: float | None = None
    min_calls: int = 20


# rule (names: config.ALERT_RULES) -> its defaults; the profile's `alerts.rules` override them
RULES: dict[str, RuleDefaults] = {
    "spend_spike": RuleDefaults(factor=2.0, min_calls=1),
    "user_spend": RuleDefaults(usd=10.0, min_calls=1),
    "feature_spend": RuleDefaults(usd=10.0, min_calls=1),
    "provider_cache_hit_rate": RuleDefaults(below=0.6, factor=0.5),
    "response_cache_hit_rate": RuleDefaults(factor=0.5, above=0.1),
    "error_rate": RuleDefaults(factor=2.0, above=0.05),
    "output_tokens_p95": RuleDefaults(factor=1.5),
    "judge_agreement": RuleDefaults(below=0.8, min_calls=5),
    "escalation_rate": RuleDefaults(factor=2.0, above=0.1),
}


@dataclass(slots=True)
class Alert:
    rule: str
    scope: str
    value: float
    threshold: float
    since_ts: float
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "scope": self.scope, "value": round(self.value, 6),
                "threshold": round(self.threshold, 6),
                "since": datetime.fromtimestamp(self.since_ts, UTC).isoformat(timespec="seconds"),
                "message": self.message}


def effective_rules(profile: Profile) -> dict[str, RuleDefaults]:
    rules = dict(RULES)
    for r in profile.alerts.rules:
        base = rules[r.rule]
        rules[r.rule] = RuleDefaults(
            factor=r.factor if r.factor is not None else base.factor,
            below=r.below if r.below is not None else base.below,
            above=r.above if r.above is not None else base.above,
            usd=r.usd if r.usd is not None else base.usd,
            min_calls=r.min_calls if r.min_calls is not None else base.min_calls)
    for name in profile.alerts.disabled:
        rules.pop(name, None)
    return rules


def p95(values: list[int]) -> float | None:
    if not values:
        return None
    return float(sorted(values)[min(len(values) - 1, int(0.95 * len(values)))])


def evaluate(conn: Any, profile: Profile, now: float | None = None) -> list[Alert]:
    """Every rule that fires now, in RULES order."""
    now = now or time.time()
    t0, back = now - DAY, now - DAY * (TRAILING_DAYS + 1)
    rules = effective_rules(profile)
    today, before = q.window(conn, t0, now), q.window(conn, back, t0)
    out: list[Alert] = []

    def add(rule: str, scope: str, value: float, threshold: float, what: str, where: str) -> None:
        out.append(Alert(rule, scope, value, threshold, t0,
                         f"{what} (rule {rule}); look at: {where}"))

    if (r := rules.get("spend_spike")) and r.factor and today.calls >= r.min_calls:
        days = q.daily_costs(conn, now, TRAILING_DAYS)
        avg = sum(days) / len(days)
        if avg > 0 and today.cost_usd > r.factor * avg:
            add("spend_spike", "global", today.cost_usd, r.factor * avg,
                f"spend in the last 24h ${today.cost_usd:.2f} is over {r.factor:g}x the "
                f"7-day daily average ${avg:.2f}", "devloop spend --since 1d --by feature")
    for rule, column in (("user_spend", "user"), ("feature_spend", "feature")):
        if (r := rules.get(rule)) and r.usd is not None:
            for key, usd in q.spend_by(conn, column, t0, now):
                if usd > r.usd:
                    add(rule, f"{column}:{key}", usd, r.usd,
                        f"{column} {key} spent ${usd:.2f} in the last 24h (over ${r.usd:.2f})",
                        f"devloop spend --since 1d --by {column}")
    if (r := rules.get("provider_cache_hit_rate")) and today.calls >= r.min_calls:
        rate, old = today.provider_cache_hit_rate, before.provider_cache_hit_rate
        if rate is not None and r.below is not None and rate < r.below:
            add("provider_cache_hit_rate", "global", rate, r.below,
                f"provider-cache hit rate {rate:.0%} is below the target {r.below:.0%}",
                "devloop spend --diagnose")
        elif rate is not None and old and r.factor and rate < r.factor * old:
            add("provider_cache_hit_rate", "global", rate, r.factor * old,
                f"provider-cache hit rate fell to {rate:.0%} from {old:.0%}",
                "devloop spend --diagnose")
    if (r := rules.get("response_cache_hit_rate")) and r.factor and today.calls >= r.min_calls \
            and before.calls >= r.min_calls:
        rate, old = today.cache_hit_rate or 0.0, before.cache_hit_rate or 0.0
        if old >= (r.above or 0.0) and rate < r.factor * old:
            add("response_cache_hit_rate", "global", rate, r.factor * old,
                f"response-cache hit rate fell to {rate:.0%} from {old:.0%} over the 7 days "
                "before", "devloop spend --since 1d --by feature (cache_hit_rate)")
    if (r := rules.get("error_rate")) and r.factor and today.calls >= r.min_calls:
        rate, old = today.error_rate or 0.0, before.error_rate or 0.0
        limit = max(r.factor * old, r.above or 0.0)
        if rate > limit:
            add("error_rate", "global", rate, limit,
                f"error rate {rate:.1%} in the last 24h (was {old:.1%})",
                "devloop spend --since 1d --by tier; the Calls screen (status >= 500)")
    if (r := rules.get("output_tokens_p95")) and r.factor:
        now_p, old_p = q.output_tokens(conn, t0, now), q.output_tokens(conn, back, t0)
        a, b = p95(now_p), p95(old_p)
        if len(now_p) >= r.min_calls and len(old_p) >= r.min_calls and a and b \
                and a > r.factor * b:
            add("output_tokens_p95", "global", a, r.factor * b,
                f"output-token p95 rose to {a:.0f} from {b:.0f}", "devloop spend --by feature")
    if (r := rules.get("judge_agreement")) and r.below is not None:
        judged, agreed = q.judge_agreement(conn, t0, now)
        if judged >= r.min_calls and agreed / judged < r.below:
            add("judge_agreement", "global", agreed / judged, r.below,
                f"judge agreement {agreed / judged:.0%} over {judged} verdicts", "devloop audit")
    if (r := rules.get("escalation_rate")) and r.factor and today.calls >= r.min_calls:
        rate, old = today.escalation_rate or 0.0, before.escalation_rate or 0.0
        limit = max(r.factor * old, r.above or 0.0)
        if rate > limit:
            add("escalation_rate", "global", rate, limit,
                f"cascade escalation rate {rate:.0%} (was {old:.0%})", "devloop spend --by route")
    return out


def slack_payload(alerts: list[Alert]) -> dict[str, Any]:
    lines = [f"*{a.rule}* [{a.scope}]: {a.message}" for a in alerts]
    return {"text": "devloop alerts:\n" + "\n".join(lines),
            "devloop_alerts": [a.as_json() for a in alerts]}


async def send_webhook(url: str, alerts: list[Alert]) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(url, json=slack_payload(alerts))
        return resp.status_code < 300
    except httpx.HTTPError as exc:
        log.warning("alert webhook failed: %s", exc)
        return False


class AlertScheduler:
    """Evaluates the rules every ``alerts.interval`` seconds; gauges and the webhook."""

    def __init__(self, gw: Gateway) -> None:
        from prometheus_client import Gauge

        self.gw = gw
        self.config = gw.profile.alerts
        self.current: list[Alert] = []
        self.gauge = Gauge("devloop_alert_firing", "1 while an alert rule fires, by rule/scope",
                           ("rule", "scope"), registry=gw.metrics.registry)
        self.value = Gauge("devloop_alert_value", "The figure of a firing alert",
                           ("rule", "scope"), registry=gw.metrics.registry)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.config.interval)

    async def run_once(self) -> list[Alert]:
        now = time.time()
        alerts = evaluate(self.gw.read_conn, self.gw.profile, now)
        self.gauge.clear()
        self.value.clear()
        for a in alerts:
            self.gauge.labels(a.rule, a.scope).set(1)
            self.value.labels(a.rule, a.scope).set(a.value)
        self.current = alerts
        fresh = [a for a in alerts if not q.sent_recently(self.gw.read_conn, a.rule, a.scope, now)]
        if fresh:
            sent = bool(self.config.webhook) and await send_webhook(self.config.webhook, fresh)
            if sent or not self.config.webhook:
                await self.gw.writer.run(q.fired_job([dict(a.as_json(), since_ts=a.since_ts)
                                                      for a in fresh], sent))
        return alerts
