"""Deterministic assertions: pure functions of an output (promptfoo's semantics).

Each check returns (holds, what was observed). A check that cannot decide (a cost with no
known price, a latency that was not measured) raises :class:`CaseError`: the case is an
error, never a pass or a quiet failure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devloop.evals.evalset import Assertion

DEFAULT_LEVENSHTEIN_THRESHOLD = 5.0  # promptfoo's default edit distance
_CONTAINS_ANY_ITEM = re.compile(r'(".*?"|[^,]+)(?=\s*,|\s*$)')


class CaseError(RuntimeError):
    """An assertion that cannot reach a verdict: the case is an error (exit 2)."""


@dataclass(slots=True)
class Output:
    """What the assertions look at: the text, and call facts for cost and latency checks."""

    text: str
    cost_usd: float | None = None
    latency_ms: float | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    syntax: str = "devloop"
    finish_reason: str | None = None
    prompt: str = ""
    cached: bool = False


def short(text: str, limit: int = 60) -> str:
    """A quoted excerpt for reasons, on one line."""
    flat = text.replace("\n", "\\n")
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)


def as_list(value: Any, kind: str = "contains-all") -> list[str]:
    """A list-valued assertion's value. A string is split as promptfoo splits it:
    contains-any keeps quoted commas ("a, b", c); the others split on every comma."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        if kind == "contains-any":
            return [m.strip().removeprefix('"').removesuffix('"')
                    for m in _CONTAINS_ANY_ITEM.findall(value)]
        return [part.strip() for part in value.split(",")]
    return [] if value is None else [str(value)]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    norm = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
    return dot / norm if norm else 0.0


def extract_json_values(text: str) -> list[Any]:
    """Every JSON object or array embedded in ``text``, left to right (for contains-json)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


def load_schema(value: Any) -> dict[str, Any] | None:
    """A JSON schema given inline (a mapping) or as JSON text; None when there is none."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            import yaml

            parsed = yaml.safe_load(value)
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f"schema must be a mapping, got {type(value).__name__}")


def schema_errors(data: Any, schema: dict[str, Any]) -> str | None:
    """The first schema violation as text, or None when ``data`` conforms."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


def _range(value: Any, what: str) -> tuple[int | None, int | None]:
    """``N`` (exactly N) or ``{min, max}`` as used by promptfoo's word-count."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: value must be a number or {{min, max}}")
    if isinstance(value, int | float):
        return int(value), int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value), int(value)
    if isinstance(value, dict) and ({"min", "max"} & set(value)):
        lo, hi = value.get("min"), value.get("max")
        return (None if lo is None else int(lo)), (None if hi is None else int(hi))
    raise ValueError(f"{what}: value must be a number or {{min, max}}")


def _in_range(n: int, lo: int | None, hi: int | None, unit: str) -> tuple[bool, str]:
    if lo is not None and lo == hi:
        return n == lo, f"{n} {unit} (expected exactly {lo})"
    parts = ([f">= {lo}"] if lo is not None else []) + ([f"<= {hi}"] if hi is not None else [])
    ok = (lo is None or n >= lo) and (hi is None or n <= hi)
    return ok, f"{n} {unit} (expected {' and '.join(parts)})"


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
        needles = as_list(value, a.base_type)
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
    if out.cost_usd is None or math.isnan(out.cost_usd):
        raise CaseError(f"{a.type}: the call's cost is unknown (no price for the model; set "
                        "prices: in the profile)")
    ok = out.cost_usd <= a.threshold
    return ok, f"cost ${out.cost_usd:.6f} {'<=' if ok else '>'} ${a.threshold:g}"


def _latency(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    assert a.threshold is not None
    if out.latency_ms is None:
        raise CaseError(f"{a.type}: latency unknown (batch results carry no per-request "
                        "latency)")
    ok = out.latency_ms <= a.threshold
    note = " (measured when the cached result was run)" if out.cached else ""
    return ok, (f"latency {out.latency_ms:.0f} ms {'<=' if ok else '>'} {a.threshold:g} ms"
                + note)


def _finish_reason(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    ok = (out.finish_reason or "").lower() == str(value).lower()
    return ok, f"finish reason {out.finish_reason!r} {'is' if ok else 'is not'} {value!r}"


def _word_count(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    lo, hi = _range(value, a.type)
    return _in_range(len(out.text.split()), lo, hi, "words")


def _length(a: Assertion, out: Output, value: Any) -> tuple[bool, str]:
    lo, hi = _range(value, a.type)
    return _in_range(len(out.text), lo, hi, "characters")


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
    "finish-reason": _finish_reason,
}



