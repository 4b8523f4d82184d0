"""Eval set files (``evalsets/*.yaml``): one prompt, its cases, a threshold, a production model.

The format follows promptfoo where it overlaps (``{{var}}`` placeholders, ``assert`` lists
with ``type``/``value``/``weight``/``threshold`` and ``not-`` negation), so a promptfoo user
reads it at a glance. Loading validates everything the later stages rely on: the assertion
types, their required values, and that every case supplies every var its prompt uses. A bad
file raises :class:`devloop.config.ConfigError` (file, field, reason) and never a traceback.

API used by the pipeline (``devloop check``) and the eval runner (``devloop eval``)::

    es = load_evalset("evalsets/commit-message.yaml")
    es.prompt_hash                      # sha256 of the canonical prompt (system, messages, tools)
    es.case_hash(es.cases[0])           # sha256 of one case's vars and assertions
    es.render(es.cases[0].vars)         # [{"role": "system", "content": ...}, ...]
    es.chat_request(es.cases[0], model="local")   # a devloop.types.ChatRequest
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from devloop.config import ConfigError, load_yaml
from devloop.types import ChatRequest

# promptfoo's deterministic and model-graded assertion types that devloop evaluates.
# Each may be negated with a ``not-`` prefix (``not-contains``). ``javascript`` and
# ``python`` are deliberately absent: an eval set is data, it does not run code.
ASSERTION_TYPES: frozenset[str] = frozenset({
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
_NEEDS_VALUE = ASSERTION_TYPES - {"is-json", "contains-json", "cost", "latency"}
# Types judged against a numeric ``threshold``.
_NEEDS_THRESHOLD = frozenset({"cost", "latency"})
_LIST_VALUED = frozenset({"contains-any", "contains-all", "icontains-any", "icontains-all"})

# ``{{ name }}`` as in promptfoo/Nunjucks; only plain identifiers are substituted.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

Role = Literal["system", "user", "assistant", "developer"]
# How often a variable's value changes in production (the cache-order stage's model).
VarRate = Literal["per_call", "per_session", "per_day", "per_deployment"]
VAR_RATES: tuple[str, ...] = ("per_deployment", "per_day", "per_session", "per_call")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Assertion(BaseModel):
    """One check on a model output. Extra promptfoo keys (``metric``, ``provider``...) are kept."""

    model_config = ConfigDict(extra="allow")

    type: str
    value: Any = None
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        base = v.removeprefix("not-")
        if base not in ASSERTION_TYPES:
            known = ", ".join(sorted(ASSERTION_TYPES))
            raise ValueError(f"unknown assertion type {v!r} (known: {known}; "
                             "prefix not- to negate)")
        return v

    @model_validator(mode="after")
    def _value_fits_type(self) -> Assertion:
        base = self.base_type
        if base in _NEEDS_VALUE and self.value is None:
            raise ValueError(f"value: {self.type} needs a value")
        if base in _NEEDS_THRESHOLD and self.threshold is None:
            raise ValueError(f"threshold: {self.type} needs a threshold")
        if base in _LIST_VALUED and not isinstance(self.value, list | str):
            raise ValueError(f"value: {self.type} needs a list (or a comma-separated string)")
        if base == "regex":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"value: invalid regex: {exc}") from None
        return self

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
            return [part.strip() for part in self.value.split(",") if part.strip()]
        return [] if self.value is None else [str(self.value)]


class Case(_Strict):
    id: str = ""
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assertions: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(default=None, ge=0, le=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PromptMessage(_Strict):
    role: Role
    content: str


class Prompt(_Strict):
    system: str | None = None
    messages: list[PromptMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Prompt:
        if not self.system and not self.messages:
            raise ValueError("prompt: needs a system prompt or at least one message")
        return self

    def templates(self) -> list[dict[str, str]]:
        """The prompt as chat messages with placeholders unrendered (system first)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.extend({"role": m.role, "content": m.content} for m in self.messages)
        return out

    def variables(self) -> list[str]:
        """Placeholder names in order of first use."""
        seen: dict[str, None] = {}
        for message in self.templates():
            for m in PLACEHOLDER.finditer(message["content"]):
                seen.setdefault(m.group(1), None)
        return list(seen)


class VarMeta(_Strict):
    """``vars_meta: {name: {rate: per_call}}``: how often a variable changes."""

    rate: VarRate


class EvalSet(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    production_model: str | None = None
    threshold: float = Field(default=1.0, ge=0, le=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    prompt: Prompt
    vars_meta: dict[str, VarMeta] = Field(default_factory=dict)
    cases: list[Case] = Field(min_length=1)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cases_fit_prompt(self) -> EvalSet:
        needed = self.prompt.variables()
        for name in self.vars_meta:
            if name not in needed:
                raise ValueError(f"vars_meta.{name}: not a variable of the prompt (it uses: "
                                 f"{', '.join(needed) or 'none'})")
        seen_ids: set[str] = set()
        for i, case in enumerate(self.cases):
            if not case.id:
                case.id = f"case-{i + 1}"
            if case.id in seen_ids:
                raise ValueError(f"cases.{i}.id: duplicate case id {case.id!r}")
            seen_ids.add(case.id)
            missing = [v for v in needed if v not in case.vars]
            if missing:
                names = ", ".join(repr(v) for v in missing)
                raise ValueError(f"cases.{i}.vars: case {case.id!r} is missing var {names} "
                                 "used by the prompt")
        return self

    # -- identity -------------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The file this eval set was loaded from (None when built in code)."""
        return self._source

    @property
    def prompt_hash(self) -> str:
        """sha256 over the canonical prompt (system, messages, tools): the key every stage
        result is stored against. Cases, threshold and model do not change it."""
        return sha256_json(self.prompt.model_dump(mode="json", exclude_none=True))

    def case_hash(self, case: Case) -> str:
        """sha256 over a case's vars and assertions (not its id or description)."""
        return sha256_json({
            "vars": case.vars,
            "assert": [a.model_dump(mode="json", exclude_none=True) for a in case.assertions],
            "threshold": case.threshold,
        })

    def model_for(self, profile_production_model: str) -> str:
        """The production model: the eval set's own, else the profile's."""
        return self.production_model or profile_production_model

    # -- rendering ------------------------------------------------------------------------
    def render(self, case_vars: Mapping[str, Any]) -> list[dict[str, str]]:
        """The prompt as chat messages with ``case_vars`` substituted (system first)."""
        return [
            {"role": m["role"], "content": render_template(m["content"], case_vars)}
            for m in self.prompt.templates()
        ]

    def chat_request(self, case: Case, model: str, **params: Any) -> ChatRequest:
        """A ready-to-send request for ``case``: rendered messages, tools, sampling options."""
        body: dict[str, Any] = {
            "model": model,
            "messages": self.render(case.vars),
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.prompt.tools:
            body["tools"] = self.prompt.tools
        body.update(params)
        return ChatRequest.model_validate(body)


def var_to_text(value: Any) -> str:
    """How a var is written into a prompt: strings as-is, structures as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    return str(value)


def render_template(template: str, case_vars: Mapping[str, Any]) -> str:
    """Substitute ``{{name}}``; a name missing from ``case_vars`` raises KeyError."""
    return PLACEHOLDER.sub(lambda m: var_to_text(case_vars[m.group(1)]), template)


def sha256_json(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _config_error(path: Path, err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    # Validators report "field: reason" for a field below the one they run on.
    if ": " in msg and re.fullmatch(r"[\w.\-]+", msg.split(": ", 1)[0]):
        sub, msg = msg.split(": ", 1)
        loc = f"{loc}.{sub}" if loc and not sub.startswith(loc) else sub
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required"
    return ConfigError(path, loc or "(top level)", msg)


def load_evalset(path: str | Path) -> EvalSet:
    """Read and validate one eval set file; raise ConfigError(file, field, reason)."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "an eval set must be a mapping")
    try:
        evalset = EvalSet.model_validate(data)
    except ValidationError as err:
        raise _config_error(path, err) from None
    evalset._source = path
    return evalset


def find_evalsets(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders to the ``*.yaml``/``*.yml`` files in them (sorted); keep files as given.
    A path that does not exist raises ConfigError."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError(p, "", "no such file or folder")
    return found
