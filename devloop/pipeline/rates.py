"""How often each variable changes, and what that means for a prompt cache.

A variable's rate comes from the eval set's ``vars_meta`` when declared; otherwise it is
inferred from the cases and the inference is reported: a value that is the same in every
case is not per-call (a date-like one is per-day, a session/directory/user-like one
per-session, anything else per-deployment); a value that differs between cases is per-call,
except a date (per-day). Literal text that looks dynamic (a timestamp, a date, an id) gets
the rate of its kind.

The hit model (stated in every report): calls arrive at random (Poisson) at
``calls_per_hour``; a cached prefix is read when the previous call with the same prefix came
within the cache lifetime (both providers refresh the lifetime on a hit), and written
otherwise. A per-session value stays for ``SESSION_CALLS`` calls, a per-day value for a day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from devloop.evals.evalset import EvalSet, VarRate, var_to_text

RATE_ORDER: dict[str, int] = {"per_deployment": 0, "per_day": 1, "per_session": 2, "per_call": 3}
DEFAULT_CALLS_PER_HOUR = 60.0
SESSION_CALLS = 10
_DAY_NAMES = ("date", "today", "day")
_SESSION_NAMES = ("session", "cwd", "dir", "workspace", "repo", "project", "branch", "user",
                  "customer", "account", "tenant", "conversation", "thread", "locale", "name",
                  "email", "plan", "tier", "os", "shell")


@dataclass(frozen=True, slots=True)
class Rate:
    var: str
    rate: VarRate
    source: Literal["declared", "inferred"]
    why: str


def _name_has(name: str, words: tuple[str, ...]) -> bool:
    parts = name.lower().replace("-", "_").split("_")
    return any(w in parts or name.lower().startswith(w) for w in words)


def infer_rate(name: str, values: list[Any], kind: str) -> tuple[VarRate, str]:
    """A rate for an undeclared variable from the values the cases give it."""
    texts = {var_to_text(v) for v in values}
    if kind == "date" or (kind != "timestamp" and _name_has(name, _DAY_NAMES)):
        return "per_day", "a date: changes once a day"
    if len(values) > 1 and len(texts) == 1:
        if kind == "timestamp" or kind == "id" and not _name_has(name, ("session",)):
            return "per_call", f"a {kind}: new on every call"
        if _name_has(name, _SESSION_NAMES) or kind in ("user", "id"):
            return "per_session", f"the same in all {len(values)} cases; a {kind} value"
        return "per_deployment", f"the same in all {len(values)} cases"
    if len(values) <= 1:
        return "per_call", "one case only: cannot tell, assumed per call"
    return "per_call", f"{len(texts)} different values in {len(values)} cases"


def variable_rates(evalset: EvalSet, kinds: dict[str, str]) -> dict[str, Rate]:
    out: dict[str, Rate] = {}
    for name in evalset.prompt.variables():
        meta = evalset.vars_meta.get(name)
        if meta is not None:
            out[name] = Rate(name, meta.rate, "declared", "vars_meta")
            continue
        rate, why = infer_rate(name, [c.vars.get(name) for c in evalset.cases],
                               kinds.get(name, "placeholder"))
        out[name] = Rate(name, rate, "inferred", why)
    return out


def literal_rate(kind: str, text: str) -> VarRate:
    if kind == "date":
        return "per_day"
    if kind == "id" and "sess" in text.lower():
        return "per_session"
    return "per_call"


def hit_probability(rate: str, ttl_seconds: float, calls_per_hour: float) -> float:
    """Chance that a call finds a prefix of this rate still cached."""
    if rate == "per_call" or calls_per_hour <= 0:
        return 0.0
    within = 1.0 - math.exp(-calls_per_hour * ttl_seconds / 3600.0)
    if rate == "per_session":
        return within * (1.0 - 1.0 / SESSION_CALLS)
    if rate == "per_day":
        return within * max(0.0, 1.0 - 1.0 / (calls_per_hour * 24.0))
    return within


def assumptions(calls_per_hour: float) -> str:
    return (f"{calls_per_hour:g} calls per hour arriving at random (--calls-per-hour), "
            f"{SESSION_CALLS} calls per session")
