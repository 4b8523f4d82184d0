"""Every assertion type on fixed strings (a table), negation, weights and case thresholds."""

from __future__ import annotations

import math
from typing import Any

import pytest

from devloop.evals.assertions import (
    CaseError,
    Output,
    as_list,
    combine,
    cosine,
    evaluate,
    extract_json_values,
    levenshtein,
    parse_rubric_reply,
    render_value,
    run_assertion,
)
from devloop.evals.evalset import Assertion

SCHEMA = {"type": "object", "required": ["lat"], "properties": {"lat": {"type": "number"}}}

# (assertion, output text, expected pass)
TABLE: list[tuple[dict[str, Any], str, bool]] = [
    ({"type": "equals", "value": "Hello world"}, "Hello world", True),
    ({"type": "equals", "value": "Hello world"}, "Hello world ", False),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1}', True),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 2}', False),
    ({"type": "not-equals", "value": "x"}, "y", True),
    ({"type": "contains", "value": "fix"}, "a fix for it", True),
    ({"type": "contains", "value": "Fix"}, "a fix for it", False),
    ({"type": "contains", "value": 0}, "error 0 found", True),  # numbers become text
    ({"type": "icontains", "value": "FIX"}, "a fix", True),
    ({"type": "icontains", "value": "bug"}, "a fix", False),
    ({"type": "not-contains", "value": "TODO"}, "done", True),
    ({"type": "not-contains", "value": "TODO"}, "TODO later", False),
    ({"type": "not-icontains", "value": "todo"}, "TODO later", False),
    ({"type": "contains-any", "value": ["cat", "dog"]}, "a dog", True),
    ({"type": "contains-any", "value": ["cat", "dog"]}, "a bird", False),
    ({"type": "contains-any", "value": "cat, dog"}, "a dog", True),  # comma-separated form
    ({"type": "contains-all", "value": ["cat", "dog"]}, "cat and dog", True),
    ({"type": "contains-all", "value": ["cat", "dog"]}, "cat only", False),
    ({"type": "icontains-any", "value": ["CAT", "DOG"]}, "a dog", True),
    ({"type": "icontains-any", "value": ["CAT"]}, "a dog", False),
    ({"type": "icontains-all", "value": ["CAT", "DOG"]}, "Cat and Dog", True),
    ({"type": "icontains-all", "value": ["CAT", "DOG"]}, "Cat only", False),
    ({"type": "not-contains-any", "value": ["x", "y"]}, "abc", True),
    ({"type": "regex", "value": r"^fix(\(\w+\))?: "}, "fix(api): off by one", True),
    ({"type": "regex", "value": r"\d{4}"}, "year 99", False),
    ({"type": "not-regex", "value": r"\d"}, "no digits", True),
    ({"type": "starts-with", "value": "Yes"}, "Yes, indeed", True),
    ({"type": "starts-with", "value": "Yes"}, "No. Yes", False),
    ({"type": "is-json"}, '{"a": [1, 2]}', True),
    ({"type": "is-json"}, "  [1, 2]\n", True),
    ({"type": "is-json"}, "Sure: {\"a\": 1}", False),
    ({"type": "is-json", "value": SCHEMA}, '{"lat": 1.5}', True),
    ({"type": "is-json", "value": SCHEMA}, '{"lat": "north"}', False),
    ({"type": "is-json", "value": '{"type": "array"}'}, "[1]", True),  # schema as JSON text
    ({"type": "not-is-json"}, "plain text", True),
    ({"type": "contains-json"}, 'Here you go: {"a": 1} thanks', True),
    ({"type": "contains-json"}, "no json here {", False),
    ({"type": "contains-json", "value": SCHEMA}, 'x {"b": 1} y {"lat": 3}', True),
    ({"type": "contains-json", "value": SCHEMA}, 'x {"b": 1}', False),
    ({"type": "is-valid-json-schema", "value": SCHEMA}, '{"lat": 2}', True),
    ({"type": "is-valid-json-schema", "value": SCHEMA}, '{"lon": 2}', False),
    ({"type": "json-schema", "value": SCHEMA}, "not json", False),
    ({"type": "levenshtein", "value": "kitten", "threshold": 3}, "sitting", True),
    ({"type": "levenshtein", "value": "kitten", "threshold": 2}, "sitting", False),
    ({"type": "levenshtein", "value": "hello world"}, "hello wrld", True),  # default 5
    ({"type": "not-levenshtein", "value": "abc", "threshold": 1}, "xyz", True),
]


@pytest.mark.parametrize(("spec", "text", "expected"), TABLE,
                         ids=[f"{i}-{s['type']}" for i, (s, _, _) in enumerate(TABLE)])
async def test_assertion_table(spec: dict[str, Any], text: str, expected: bool) -> None:
    result = await run_assertion(Assertion.model_validate(spec), Output(text))
    assert result.passed is expected, result.reason
    assert result.score == (1.0 if expected else 0.0)
    assert result.reason.startswith(spec["type"] + ":")


@pytest.mark.parametrize(("spec", "out", "expected"), [
    ({"type": "cost", "threshold": 0.01}, Output("x", cost_usd=0.005), True),
    ({"type": "cost", "threshold": 0.01}, Output("x", cost_usd=0.02), False),
    ({"type": "not-cost", "threshold": 0.01}, Output("x", cost_usd=0.02), True),
    ({"type": "latency", "threshold": 500}, Output("x", latency_ms=120.0), True),
    ({"type": "latency", "threshold": 500}, Output("x", latency_ms=900.0), False),
])
async def test_cost_and_latency(spec: dict[str, Any], out: Output, expected: bool) -> None:
    assert (await run_assertion(Assertion.model_validate(spec), out)).passed is expected


@pytest.mark.parametrize(("type_", "value", "text", "expected"), [
    ("word-count", 3, "one two three", True),
    ("word-count", 3, "one two", False),
    ("word-count", {"min": 2, "max": 4}, "one two three", True),
    ("word-count", {"max": 2}, "one two three", False),
    ("length", {"max": 5}, "short", True),
    ("length", {"max": 5}, "longer", False),
    ("length", {"min": 3}, "ab", False),
])
async def test_length_limits(type_: str, value: Any, text: str, expected: bool) -> None:
    a = Assertion.model_validate({"type": type_, "value": value})
    assert (await run_assertion(a, Output(text))).passed is expected


async def test_values_are_rendered_with_case_vars() -> None:
    a = Assertion.model_validate({"type": "contains", "value": "{{ name }}"})
    assert (await run_assertion(a, Output("hi Ada", vars={"name": "Ada"}))).passed
    assert render_value(["{{x}}", "{{missing}}"], {"x": 1}) == ["1", "{{missing}}"]


def _results(*pairs: tuple[bool, float]) -> list[Any]:
    from devloop.evals.assertions import AssertionResult

    return [AssertionResult("t", ok, 1.0 if ok else 0.0, "t: r", w) for ok, w in pairs]


def test_weights_and_case_threshold_follow_promptfoo() -> None:
    # promptfoo's example: equals (weight 2) fails, contains (weight 1) passes -> score 1/3.
    verdict = combine(_results((False, 2), (True, 1)), None)
    assert not verdict.passed and math.isclose(verdict.score, 1 / 3)
    assert not combine(_results((False, 2), (True, 1)), 0.5).passed
    assert combine(_results((False, 2), (True, 1)), 0.2).passed
    assert combine(_results((False, 1)), 0.0).passed  # threshold 0 always passes
    assert combine(_results((False, 0), (True, 1)), None).passed  # weight 0 never fails
    assert combine([], None).passed


async def test_case_reason_names_the_failed_checks() -> None:
    asserts = [Assertion.model_validate(s) for s in (
        {"type": "contains", "value": "a"}, {"type": "contains", "value": "zzz"})]
    verdict = await evaluate(asserts, Output("abc"))
    assert not verdict.passed
    assert verdict.reason == 'contains: output does not contain "zzz"'


@pytest.mark.parametrize(("reply", "threshold", "passed", "score"), [
    ('{"reason": "ok", "pass": true, "score": 1.0}', None, True, 1.0),
    ('{"reason": "bad", "pass": false, "score": 0.0}', None, False, 0.0),
    ('Sure! {"reason": "fine", "score": 0.0}', None, False, 0.0),  # no pass: score decides
    ('The output {"total": 3} is wrong. {"reason": "no", "pass": false, "score": 0}', None,
     False, 0.0),  # the verdict is the last object carrying pass/score, not the quoted JSON
    ('{"pass": true, "score": 0.4}', 0.5, False, 0.4),  # threshold: both must hold
    ('{"pass": true, "score": 0.9}', 0.5, True, 0.9),
])
def test_rubric_reply(reply: str, threshold: float | None, passed: bool, score: float) -> None:
    got = parse_rubric_reply(reply, threshold)
    assert (got[0], got[1]) == (passed, score)


@pytest.mark.parametrize("reply", ["I think it is good.", 'The output {"total": 3} is fine.'])
def test_rubric_reply_without_verdict_is_an_error(reply: str) -> None:
    with pytest.raises(CaseError, match="the judge gave no verdict"):
        parse_rubric_reply(reply, None)


@pytest.mark.parametrize("spec", [{"type": "cost", "threshold": 0.01},
                                  {"type": "latency", "threshold": 500}])
async def test_unknown_cost_or_latency_is_an_error(spec: dict) -> None:
    with pytest.raises(CaseError):
        await run_assertion(Assertion.model_validate(spec), Output("x"))


@pytest.mark.parametrize(("value", "kind", "items"), [
    ('"a, b", c', "contains-any", ["a, b", "c"]),  # promptfoo keeps quoted commas
    ("a, b,c", "contains-all", ["a", "b", "c"]),
])
def test_list_values_split_like_promptfoo(value: str, kind: str, items: list[str]) -> None:
    assert as_list(value, kind) == items


class FixedGrader:
    """Answers with fixed values, to test how graded assertions use a grader's answers."""

    def __init__(self, reply: str, vectors: list[list[float]]) -> None:
        self.reply, self.vectors, self.judged = reply, vectors, []

    async def judge(self, messages: list[dict[str, str]], model: str | None
                    ) -> tuple[str, float]:
        self.judged.append((messages, model))
        return self.reply, 0.001

    async def embed(self, texts: list[str], model: str | None
                    ) -> tuple[list[list[float]], float]:
        return self.vectors[: len(texts)], 0.0002


async def test_llm_rubric_and_similar_use_the_grader() -> None:
    grader = FixedGrader('{"reason": "meets it", "pass": true, "score": 0.8}',
                         [[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    rubric = Assertion.model_validate({"type": "llm-rubric", "value": "Greets {{who}}",
                                       "provider": "openai:chat:gpt-4o-mini"})
    result = await run_assertion(rubric, Output("hello Ada", vars={"who": "Ada"}), grader)
    assert result.passed and result.score == 0.8 and result.cost_usd == 0.001
    messages, model = grader.judged[0]
    assert model == "openai/gpt-4o-mini" and "Greets Ada" in messages[1]["content"]
    inverted = await run_assertion(Assertion.model_validate(
        {"type": "not-llm-rubric", "value": "x"}), Output("y"), grader)
    assert not inverted.passed and math.isclose(inverted.score, 0.2)
    similar = Assertion.model_validate({"type": "similar", "value": ["far", "near"],
                                        "threshold": 0.8})
    result = await run_assertion(similar, Output("text"), grader)
    assert result.passed and math.isclose(result.score, cosine([1, 0], [0.9, 0.1]))
    not_similar = Assertion.model_validate({"type": "not-similar", "value": ["far", "near"],
                                            "threshold": 0.8})
    assert not (await run_assertion(not_similar, Output("text"), grader)).passed


def test_helpers() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert extract_json_values('a {"x": [1]} b [2, 3] c {bad') == [{"x": [1]}, [2, 3]]
    assert math.isclose(cosine([1, 0], [1, 0]), 1.0) and cosine([1, 0], [0, 1]) == 0.0
