"""Text, JSON and schema helpers behind the assertions (devloop.evals.assertions). Pure."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from devloop.evals.evalset import PLACEHOLDER, var_to_text


def render_value(value: Any, case_vars: Mapping[str, Any]) -> Any:
    """Substitute ``{{var}}`` in string values (promptfoo renders assertion values too);
    unknown names are left as written."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(
            lambda m: var_to_text(case_vars[m.group(1)]) if m.group(1) in case_vars
            else m.group(0), value)
    if isinstance(value, list):
        return [render_value(v, case_vars) for v in value]
    return value


def short(text: str, limit: int = 60) -> str:
    """A quoted excerpt for reasons, on one line."""
    flat = text.replace("\n", "\\n")
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)


def as_list(value: Any) -> list[str]:
    """A list-valued assertion's value (promptfoo also takes a comma-separated string)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
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


def parse_range(value: Any, what: str) -> tuple[int | None, int | None]:
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


def in_range(n: int, lo: int | None, hi: int | None, unit: str) -> tuple[bool, str]:
    if lo is not None and lo == hi:
        return n == lo, f"{n} {unit} (expected exactly {lo})"
    parts = ([f">= {lo}"] if lo is not None else []) + ([f"<= {hi}"] if hi is not None else [])
    ok = (lo is None or n >= lo) and (hi is None or n <= hi)
    return ok, f"{n} {unit} (expected {' and '.join(parts)})"
