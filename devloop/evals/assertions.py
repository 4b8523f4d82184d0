"""Assertions on a model output, with promptfoo's documented semantics.

Each assertion gives a pass/fail, a score in [0, 1] and a one-line reason. ``not-`` inverts
the pass (and the score of graded assertions). A case combines its assertions as promptfoo
does: the score is the weight-averaged score; with a case ``threshold`` the case passes when
that score is >= the threshold, otherwise every assertion (of non-zero weight) must pass.
A weight of 0 never fails a case.

Deterministic checks are pure functions (devloop.evals.checks). ``llm-rubric`` and ``similar``
call a model through a :class:`Grader` (the runner passes one backed by litellm); ``javascript``
runs in node and ``python`` in a Python subprocess (devloop.evals.code_asserts). Graders fail
closed: a judge reply without a verdict, a grader call that fails, an unknown cost raise
(CaseError, EvalCallError) so the runner reports the case as an error, never as a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from devloop.evals.checks import (
    CHECKS,
    CaseError,
    Output,
    as_list,
    cosine,
    extract_json_values,
    levenshtein,
    load_schema,
    schema_errors,
    short,
)
from devloop.evals.evalset import PLACEHOLDER, Assertion, var_to_text

__all__ = ["CHECKS", "SUPPORTED_TYPES", "CaseError", "Output", "as_list", "cosine",
           "extract_json_values", "levenshtein", "load_schema", "schema_errors", "short"]
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


# -- helpers ---------------------------------------------------------------------------------
def render_value(value: Any, case_vars: Mapping[str, Any], syntax: str = "devloop") -> Any:
    """Substitute ``{{var}}`` in string values (promptfoo renders assertion values too);
    unknown names are left as written (devloop syntax) or render empty (Nunjucks)."""
    if syntax == "nunjucks" and isinstance(value, str):
        from devloop.evals.templating import render

        return render(value, case_vars)
    if isinstance(value, str):
        return PLACEHOLDER.sub(
            lambda m: var_to_text(case_vars[m.group(1)]) if m.group(1) in case_vars
            else m.group(0), value)
    if isinstance(value, list):
        return [render_value(v, case_vars, syntax) for v in value]
    return value


# -- model-graded ----------------------------------------------------------------------------
def rubric_messages(rubric: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RUBRIC_SYSTEM},
        {"role": "user", "content": f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric}\n"
                                    "</Rubric>"},
    ]


def parse_rubric_reply(reply: str, threshold: float | None) -> tuple[bool, float, str]:
    """The verdict is the LAST JSON object in the reply that carries ``pass`` or ``score``
    (a judge may quote the output's JSON before its own verdict). No such object raises
    CaseError: no verdict is never a pass. ``pass`` missing: decided by ``score`` >= 0.5;
    with a threshold both must hold."""
    objects = [v for v in extract_json_values(reply)
               if isinstance(v, dict) and ("pass" in v or "score" in v)]
    if not objects:
        raise CaseError(f"llm-rubric: the judge gave no verdict (no JSON object with "
                        f"\"pass\" or \"score\"): {short(reply, 80)}")
    verdict = objects[-1]
    score: float | None = None
    if "score" in verdict:
        try:
            score = min(max(float(verdict["score"]), 0.0), 1.0)
        except (TypeError, ValueError):
            raise CaseError(f"llm-rubric: the judge's score is not a number: "
                            f"{short(str(verdict['score']))}") from None
    if "pass" in verdict:
        raw = verdict["pass"]
        passed = raw if isinstance(raw, bool) else str(raw).strip().lower() in (
            "true", "yes", "pass", "y")
    else:
        passed = score is not None and score >= 0.5
    if score is None:
        score = 1.0 if passed else 0.0
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
    if isinstance(provider, str) and provider.startswith(("file://", "exec:", "python:")):
        raise CaseError(f"{a.type}: grader provider {provider} is not supported")
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
    value = render_value(a.value, out.vars, out.syntax)
    spent = 0.0
    if base == "assert-set":
        inner = await evaluate(a.children or [], out, a.threshold, grader)
        holds, score, observed = inner.passed, inner.score, inner.reason
        spent = inner.grading_cost_usd
    elif base in MODEL_GRADED:
        if grader is None:
            raise GraderMissing(f"{a.type} needs a grader model")
        fn = _llm_rubric if base == "llm-rubric" else _similar
        holds, score, observed, spent = await fn(a, out, value, grader)
    elif base in ("javascript", "python"):
        from devloop.evals.code_asserts import run_code

        holds, score, observed = await run_code(base, str(value), a, out)
    elif base in CHECKS:
        try:
            holds, observed = CHECKS[base](a, out, value)
        except ValueError as exc:  # a value that cannot be used: a failed check, said why
            holds, observed = False, f"bad value: {exc}"
        score = 1.0 if holds else 0.0
    else:
        raise CaseError(f"unsupported assertion type {a.type!r}")
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
    out: set[str] = set()
    for a in assertions:
        if a.base_type in MODEL_GRADED:
            out.add(a.base_type)
        out |= needs_grader(a.children or [])
    return out


SUPPORTED_TYPES = frozenset(CHECKS) | MODEL_GRADED | {"javascript", "python", "assert-set"}
