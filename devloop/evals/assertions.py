"""Assertions on a model output, with promptfoo's documented semantics.

Each assertion gives a pass/fail, a score in [0, 1] and a one-line reason. ``not-`` inverts
the pass (and the score of graded assertions). A case combines its assertions as promptfoo
does: the score is the weight-averaged score; with a case ``threshold`` the case passes when
that score is >= the threshold, otherwise every assertion (of non-zero weight) must pass.
A weight of 0 never fails a case.

Deterministic checks are pure functions. ``llm-rubric`` and ``similar`` call a model through a
:class:`Grader` (the runner passes one backed by litellm); a grader failure propagates so the
runner can report the case as an error instead of a failed check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from devloop.evals.evalset import Assertion
from devloop.evals.matching import (
    as_list,
    cosine,
    extract_json_values,
    in_range,
    levenshtein,
    load_schema,
    parse_range,
    render_value,
    schema_errors,
    short,
)

DEFAULT_LEVENSHTEIN_THRESHOLD = 5.0  # promptfoo's default edit distance
DEFAULT_SIMILAR_THRESHOLD = 0.75  # promptfoo's default cosine similarity
MODEL_GRADED = frozenset({"llm-rubric", "similar"})
# Types whose score is a graded number, so not- inverts the score as well as the pass.
GRADED_SCORES = frozenset({"llm-rubric", "similar"})

RUBRIC_SYSTEM = """\
You are grading the output of an AI system against a rubric. Read the output and the rubric,
then reply with one JSON object and nothing else:
{"reason": "<one or two sentences>", "pass": true or false, "score": <number from 0.0 to 1.0>}
"pass" is true only if the output meets the rubric."""


@dataclass(slots=True)
class Output:
    """What the assertions look at: the text, and call facts for cost and latency checks."""

    text: str
    cost_usd: float | None = None
    latency_ms: float | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AssertionResult:
    type: str
    passed: bool
    score: float
    reason: str
    weight: float = 1.0
    cost_usd: float = 0.0  # what grading spent (judge and embedding calls)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        return data


@dataclass(slots=True)
class CaseVerdict:
    passed: bool
    score: float
    reason: str
    results: list[AssertionResult]

    @property
    def grading_cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)


class Grader(Protocol):
    """The model calls that graded assertions need. Each returns the USD it spent."""

    async def judge(self, messages: list[dict[str, str]], model: str | None
                    ) -> tuple[str, float]: ...

    async def embed(self, texts: list[str], model: str | None
                    ) -> tuple[list[list[float]], float]: ...


class GraderMissing(RuntimeError):
    """A model-graded assertion was asked for with no grader to run it."""


# -- deterministic checks: (assertion, output, value) -> (holds, what was observed) --------
Check = Callable[[Assertion, Output, Any], tuple[bool, str]]


def _equals(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    if isinstance(value, dict | list):
        try:
            parsed = json.loads(out.text)
        except json.JSONDecodeError:
            return False, "output is not JSON, so it cannot equal the expected JSON"
        return (parsed == value,
                "output equals the expected JSON" if parsed == value
                else "output JSON differs from the expected JSON")
    expected = str(value)
    ok = out.text == expected
    return ok, (f"output equals {short(expected)}" if ok
                else f"output {short(out.text)} does not equal {short(expected)}")


def _contains(fold: bool) -> Check:
    def check(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
        needle, hay = str(value), out.text
        ok = needle.lower() in hay.lower() if fold else needle in hay
        return ok, f"output {'contains' if ok else 'does not contain'} {short(needle)}"

    return check


def _contains_many(fold: bool, need_all: bool) -> Check:
    def check(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
        hay = out.text.lower() if fold else out.text
        needles = as_list(value)
        found = [n for n in needles if (n.lower() if fold else n) in hay]
        missing = [n for n in needles if n not in found]
        if need_all:
            return (not missing,
                    "output contains all of them" if not missing else
                    f"output lacks {', '.join(short(n) for n in missing)}")
        return (bool(found),
                f"output contains {short(found[0])}" if found else
                f"output contains none of {', '.join(short(n) for n in needles)}")

    return check


def _regex(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    ok = re.search(str(value), out.text) is not None
    return ok, f"output {'matches' if ok else 'does not match'} /{value}/"


def _starts_with(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    ok = out.text.startswith(str(value))
    return ok, f"output {'starts' if ok else 'does not start'} with {short(str(value))}"


def _validate(data: Any, value: Any) -> tuple[bool, str]:
    schema = load_schema(value)
    if schema is None:
        return True, "output is valid JSON"
    problem = schema_errors(data, schema)
    return (problem is None,
            "output is JSON that matches the schema" if problem is None
            else f"output JSON does not match the schema: {problem}")


def _is_json(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    try:
        data = json.loads(out.text)
    except json.JSONDecodeError as exc:
        return False, f"output is not valid JSON ({exc.msg} at char {exc.pos})"
    return _validate(data, value)


def _contains_json(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    found = extract_json_values(out.text)
    if not found:
        return False, "output contains no JSON"
    last = ""
    for data in found:
        ok, last = _validate(data, value)
        if ok:
            return True, "output contains JSON" + (" that matches the schema" if value else "")
    return False, last


def _json_schema(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    if load_schema(value) is None:
        raise ValueError("is-valid-json-schema needs the schema as its value")
    return _is_json(a, out, value)


def _levenshtein(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    limit = a.threshold if a.threshold is not None else DEFAULT_LEVENSHTEIN_THRESHOLD
    distance = levenshtein(out.text, str(value))
    return distance <= limit, f"edit distance to {short(str(value))} is {distance} " \
                              f"(threshold {limit:g})"


def _cost(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    assert a.threshold is not None
    if out.cost_usd is None:
        return False, "the call's cost is unknown (no price for the model)"
    ok = out.cost_usd <= a.threshold
    return ok, f"cost ${out.cost_usd:.6f} {'<=' if ok else '>'} ${a.threshold:g}"


def _latency(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    assert a.threshold is not None
    if out.latency_ms is None:
        return False, "latency unknown (batch results carry no per-request latency)"
    ok = out.latency_ms <= a.threshold
    return ok, f"latency {out.latency_ms:.0f} ms {'<=' if ok else '>'} {a.threshold:g} ms"


def _word_count(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    lo, hi = parse_range(value, a.type)
    return in_range(len(out.text.split()), lo, hi, "words")


def _length(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    lo, hi = parse_range(value, a.type)
    return in_range(len(out.text), lo, hi, "characters")


CHECKS: dict[str, Check] = {
    "equals": _equals,
    "contains": _contains(fold=False),
    "icontains": _contains(fold=True),
    "contains-any": _contains_many(fold=False, need_all=False),
    "contains-all": _contains_many(fold=False, need_all=True),
    "icontains-any": _contains_many(fold=True, need_all=False),
    "icontains-all": _contains_many(fold=True, need_all=True),
    "regex": _regex,
    "starts-with": _starts_with,
    "is-json": _is_json,
    "contains-json": _contains_json,
    "is-valid-json-schema": _json_schema,
    "levenshtein": _levenshtein,
    "cost": _cost,
    "latency": _latency,
    "word-count": _word_count,
    "length": _length,
}
SUPPORTED_TYPES = frozenset(CHECKS) | MODEL_GRADED


# -- model-graded ----------------------------------------------------------------------------
def rubric_messages(rubric: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RUBRIC_SYSTEM},
        {"role": "user", "content": f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric}\n"
                                    "</Rubric>"},
    ]


def parse_rubric_reply(reply: str, threshold: float | None) -> tuple[bool, float, str]:
    """promptfoo's rules: ``pass`` defaults to true when omitted; ``score`` only decides when a
    threshold is set (then both must hold). A reply with no JSON object fails."""
    objects = [v for v in extract_json_values(reply) if isinstance(v, dict)]
    if not objects:
        return False, 0.0, f"judge reply has no JSON verdict: {short(reply, 80)}"
    verdict = objects[0]
    raw_pass = verdict.get("pass", True)
    passed = raw_pass if isinstance(raw_pass, bool) else str(raw_pass).lower() == "true"
    try:
        score = float(verdict.get("score", 1.0 if passed else 0.0))
    except (TypeError, ValueError):
        score = 1.0 if passed else 0.0
    score = min(max(score, 0.0), 1.0)
    reason = str(verdict.get("reason", "")).strip() or "no reason given"
    if threshold is not None:
        passed = passed and score >= threshold
        reason += f" (score {score:g}, threshold {threshold:g})"
    return passed, score, f"judge: {reason}"


def grader_model(a: Assertion) -> str | None:
    """A per-assertion ``provider`` (promptfoo) overrides the run's judge/embedding model."""
    from devloop.evals.promptfoo import provider_to_model

    provider = (a.model_extra or {}).get("provider")
    if isinstance(provider, dict):
        provider = provider.get("id")
    return provider_to_model(provider) if isinstance(provider, str) and provider else None


async def _llm_rubric(a: Assertion, out: Output, value: Any, grader: Grader
                      ) -> tuple[bool, float, str, float]:
    reply, spent = await grader.judge(rubric_messages(str(value), out.text), grader_model(a))
    passed, score, reason = parse_rubric_reply(reply, a.threshold)
    return passed, score, reason, spent


async def _similar(a: Assertion, out: Output, value: Any, grader: Grader
                   ) -> tuple[bool, float, str, float]:
    expected = value if isinstance(value, list) else [value]
    expected = [str(v) for v in expected]
    threshold = a.threshold if a.threshold is not None else DEFAULT_SIMILAR_THRESHOLD
    vectors, spent = await grader.embed([out.text, *expected], grader_model(a))
    sims = [cosine(vectors[0], v) for v in vectors[1:]]
    best = max(sims)
    nearest = expected[sims.index(best)]
    ok = best >= threshold
    return ok, best, (f"cosine similarity to {short(nearest)} is {best:.3f} "
                      f"({'>=' if ok else '<'} {threshold:g})"), spent


# -- running ---------------------------------------------------------------------------------
async def run_assertion(a: Assertion, out: Output, grader: Grader | None = None
                        ) -> AssertionResult:
    base = a.base_type
    value = render_value(a.value, out.vars)
    spent = 0.0
    if base in MODEL_GRADED:
        if grader is None:
            raise GraderMissing(f"{a.type} needs a grader model")
        fn = _llm_rubric if base == "llm-rubric" else _similar
        holds, score, observed, spent = await fn(a, out, value, grader)
    elif base in CHECKS:
        try:
            holds, observed = CHECKS[base](a, out, value)
        except ValueError as exc:  # a value that cannot be used: a failed check, said why
            holds, observed = False, f"bad value: {exc}"
        score = 1.0 if holds else 0.0
    else:
        holds, score, observed = False, 0.0, f"unsupported assertion type {a.type!r}"
    passed = holds != a.negated
    if a.negated:
        score = 1.0 - score if base in GRADED_SCORES else (1.0 if passed else 0.0)
    return AssertionResult(a.type, passed, score, f"{a.type}: {observed}", a.weight, spent)


def combine(results: list[AssertionResult], threshold: float | None) -> CaseVerdict:
    """promptfoo's case rule: weighted-average score; with a threshold the score decides,
    without one every assertion of non-zero weight must pass."""
    counted = [r for r in results if r.weight > 0]
    total = sum(r.weight for r in counted)
    score = sum(r.weight * r.score for r in counted) / total if total else 1.0
    failed = [r for r in counted if not r.passed]
    if threshold is not None:
        passed = score >= threshold - 1e-12
        head = f"score {score:.2f} {'>=' if passed else '<'} threshold {threshold:g}"
        reason = head if passed or not failed else f"{head}: " + "; ".join(
            r.reason for r in failed)
    else:
        passed = not failed
        reason = ("; ".join(r.reason for r in failed) if failed else
                  f"all {len(counted)} assertions passed" if len(counted) > 1 else
                  "1 assertion passed" if counted else "no assertions")
    return CaseVerdict(passed, score, reason, results)


async def evaluate(assertions: Sequence[Assertion], out: Output, threshold: float | None = None,
                   grader: Grader | None = None) -> CaseVerdict:
    results = [await run_assertion(a, out, grader) for a in assertions]
    return combine(results, threshold)


def needs_grader(assertions: Sequence[Assertion]) -> set[str]:
    """Which model-graded kinds (llm-rubric, similar) a list of assertions uses."""
    return {a.base_type for a in assertions if a.base_type in MODEL_GRADED}
