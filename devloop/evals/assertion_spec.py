"""The assertion model of eval sets (promptfoo's ``assert`` entries): types, values, weights."""

from __future__ import annotations

import csv
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# promptfoo's assertion types that devloop evaluates. Each may be negated with a ``not-``
# prefix (``not-contains``). ``javascript`` runs in node, ``python`` in a Python subprocess.
ASSERTION_TYPES: frozenset[str] = frozenset({
    "javascript",
    "python",
    "assert-set",
    "finish-reason",
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "regex",
    "starts-with",
    "is-json",
    "contains-json",
    "is-valid-json-schema",
    "json-schema",
    "levenshtein",
    "cost",
    "latency",
    "llm-rubric",
    "similar",
    "word-count",
    "length",
})
# Types whose ``value`` is required (is-json/contains-json take an optional JSON schema).
_NEEDS_VALUE = ASSERTION_TYPES - {"is-json", "contains-json", "cost", "latency", "assert-set"}
# promptfoo types devloop refuses, with why (a clear refusal instead of "unknown type").
REFUSED_TYPES: dict[str, str] = {
    "answer-relevance": "answer-relevance is not supported by devloop (it needs generated "
                        "questions and embeddings of the input); use llm-rubric or similar",
    "context-relevance": "context-relevance (RAG) is not supported by devloop",
    "context-faithfulness": "context-faithfulness (RAG) is not supported by devloop",
    "context-recall": "context-recall (RAG) is not supported by devloop",
    "model-graded-closedqa": "model-graded-closedqa is not supported; use llm-rubric",
    "factuality": "factuality is not supported; use llm-rubric",
    "g-eval": "g-eval is not supported; use llm-rubric",
    "select-best": "select-best compares providers; devloop evaluates one model",
    "webhook": "webhook assertions are not supported (devloop does not call out)",
}
# Types judged against a numeric ``threshold``.
_NEEDS_THRESHOLD = frozenset({"cost", "latency"})
# promptfoo assertion keys kept as they are: metric (a label), provider (the grader),
# config (context.config of javascript/python code).
EXTRA_KEYS = frozenset({"metric", "provider", "config"})
_LIST_VALUED = frozenset({"contains-any", "contains-all", "icontains-any", "icontains-all"})

class Assertion(BaseModel):
    """One check on a model output. Extra promptfoo keys (``metric``, ``provider``...) are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    value: Any = None
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = None
    children: list[Assertion] | None = Field(default=None, alias="assert")

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        base = v.removeprefix("not-")
        if base in REFUSED_TYPES:
            raise ValueError(REFUSED_TYPES[base])
        if base not in ASSERTION_TYPES:
            known = ", ".join(sorted(ASSERTION_TYPES))
            raise ValueError(f"unknown assertion type {v!r} (known: {known}; "
                             "prefix not- to negate)")
        return v

    @model_validator(mode="after")
    def _value_fits_type(self) -> Assertion:
        base = self.base_type
        for key in self.model_extra or {}:
            if key not in EXTRA_KEYS:
                raise ValueError(f"{key}: not supported by devloop (assertion keys: type, "
                                 "value, threshold, weight, " + ", ".join(sorted(EXTRA_KEYS))
                                 + ")")
        if base in _NEEDS_VALUE and self.value is None:
            raise ValueError(f"value: {self.type} needs a value")
        if base in _NEEDS_THRESHOLD and self.threshold is None:
            raise ValueError(f"threshold: {self.type} needs a threshold")
        if base == "assert-set" and not self.children:
            raise ValueError("assert: assert-set needs a list of assertions under assert")
        if base != "assert-set" and self.children is not None:
            raise ValueError("assert: only assert-set takes nested assertions")
        if isinstance(self.value, str) and self.value.startswith("file://"):
            raise ValueError(f"value: {self.value} was not loaded (file:// values are read "
                             "from promptfoo configs only)")
        if base in _LIST_VALUED and not isinstance(self.value, list | str):
            raise ValueError(f"value: {self.type} needs a list (or a comma-separated string)")
        if base == "regex":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"value: invalid regex: {exc}") from None
        return self

    def effective(self) -> bool:
        """Can this assertion decide a case? (weight above 0; an assert-set needs a child that
        can.)"""
        if self.weight <= 0:
            return False
        return self.children is None or any(c.effective() for c in self.children)

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base_type(self) -> str:
        """The type without its ``not-`` prefix; ``json-schema`` is an alias of
        ``is-valid-json-schema``."""
        base = self.type.removeprefix("not-")
        return "is-valid-json-schema" if base == "json-schema" else base

    def values(self) -> list[str]:
        """``value`` as a list of strings (promptfoo accepts a comma-separated string)."""
        if isinstance(self.value, list):
            return [str(v) for v in self.value]
        if isinstance(self.value, str) and self.base_type in _LIST_VALUED:
            return split_csv(self.value)
        return [] if self.value is None else [str(self.value)]




def split_csv(value: str) -> list[str]:
    """A comma-separated list as promptfoo splits it: CSV quoting keeps quoted commas."""
    try:
        row = next(csv.reader([value], skipinitialspace=True))
    except (csv.Error, StopIteration):
        row = value.split(",")
    return [part.strip() for part in row if part.strip()]
