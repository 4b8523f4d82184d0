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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from devloop.config import ConfigError
from devloop.evals.assertion_spec import ASSERTION_TYPES, REFUSED_TYPES, Assertion, split_csv
from devloop.evals.templating import render as render_nunjucks
from devloop.evals.templating import syntax_error, variables_used
from devloop.evals.yaml12 import load_yaml12
from devloop.types import ChatRequest

__all__ = ["ASSERTION_TYPES", "REFUSED_TYPES", "Assertion", "split_csv"]

# ``{{ name }}`` as in promptfoo/Nunjucks; only plain identifiers are substituted.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

Role = Literal["system", "user", "assistant", "developer"]
# How often a variable's value changes in production (the cache-order stage's model).
VarRate = Literal["per_call", "per_session", "per_day", "per_deployment"]
VAR_RATES: tuple[str, ...] = ("per_deployment", "per_day", "per_session", "per_call")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Case(_Strict):
    id: str = ""
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assertions: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(default=None, ge=0, le=1)
    transform: str | None = None  # a JavaScript expression applied to the output (promptfoo)

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
    # None: not sent (promptfoo sends a temperature only when its config sets a non-zero one)
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    allow_empty: bool = False  # cases without an effective assertion run (else: errors)
    syntax: Literal["devloop", "nunjucks"] = "devloop"  # nunjucks: promptfoo's templates
    params: dict[str, Any] = Field(default_factory=dict)  # more request body (response_format..)
    api_base: str | None = None
    grader: str | None = None  # the model for llm-rubric/similar (promptfoo: options.provider)
    prompt: Prompt
    vars_meta: dict[str, VarMeta] = Field(default_factory=dict)
    cases: list[Case] = Field(min_length=1)

    _source: Path | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)
    # vars that sibling prompts (of one promptfoo config) use; None: do not report unused vars
    _also_used: set[str] | None = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _cases_fit_prompt(self) -> EvalSet:
        needed = self.variables()
        for name in self.vars_meta:
            if name not in needed:
                raise ValueError(f"vars_meta.{name}: not a variable of the prompt (it uses: "
                                 f"{', '.join(needed) or 'none'})")
        seen_ids: set[str] = set()
        for m in self.prompt.templates():
            if self.syntax == "nunjucks" and (problem := syntax_error(m["content"])):
                raise ValueError(f"prompt: {problem}")
        for i, case in enumerate(self.cases):
            if not case.id:
                case.id = f"case-{i + 1}"
            if case.id in seen_ids:
                raise ValueError(f"cases.{i}.id: duplicate case id {case.id!r}")
            seen_ids.add(case.id)
            missing = [v for v in needed if v not in case.vars]
            if missing and self.syntax == "devloop":
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
            "assert": [a.model_dump(mode="json", exclude_none=True, by_alias=True)
                       for a in case.assertions],
            "threshold": case.threshold,
            **({"transform": case.transform} if case.transform else {}),
        })

    def case_hashes(self) -> dict[str, str]:
        return {c.id: self.case_hash(c) for c in self.cases}

    def content_hash(self, model: str) -> str:
        """sha256 over everything a verdict depends on: the prompt, every case (id, vars,
        assertions), the threshold, the model and the request settings. A promotion is for
        exactly this hash."""
        return sha256_json({
            "prompt": self.prompt_hash, "cases": self.case_hashes(),
            "threshold": self.threshold, "model": model, "allow_empty": self.allow_empty,
            "syntax": self.syntax, "temperature": self.temperature,
            "max_tokens": self.max_tokens, "params": self.params, "grader": self.grader,
        })

    def model_for(self, profile_production_model: str) -> str:
        """The production model: the eval set's own, else the profile's."""
        return self.production_model or profile_production_model

    # -- checks that warn or make a case an error ---------------------------------------
    def variables(self) -> list[str]:
        if self.syntax == "devloop":
            return self.prompt.variables()
        seen: dict[str, None] = {}
        for m in self.prompt.templates():
            for name in variables_used(m["content"]):
                seen.setdefault(name, None)
        return list(seen)

    def empty_reason(self, case: Case) -> str | None:
        """Why ``case`` cannot fail (no assertion that counts), or None when it can."""
        if self.allow_empty or any(a.effective() for a in case.assertions):
            return None
        hint = " (set allow_empty: true to run it anyway)"
        if "assert" in case.vars:
            return (f"case {case.id!r} has no assertions: its `assert:` is indented under "
                    f"`vars:`{hint}")
        if case.assertions:
            return f"case {case.id!r} has no effective assertion: all have weight 0{hint}"
        return f"case {case.id!r} has no assertions{hint}"

    def warnings(self) -> list[str]:
        """Loader notes plus vars that no prompt or assertion reads, naming case and var."""
        out = list(self._notes)
        if self._also_used is None:
            return out
        used = set(self.variables()) | self._also_used
        for case in self.cases:
            text = json.dumps([a.model_dump(mode="json", by_alias=True)
                               for a in case.assertions]) + (case.transform or "")
            for name in case.vars:
                if name not in used and name != "assert" and not re.search(
                        rf"\b{re.escape(name)}\b", text):
                    out.append(f"{self.name}: case {case.id!r}: var {name!r} is not used by "
                               "the prompt or any assertion")
        return out

    # -- rendering ------------------------------------------------------------------------
    def render_text(self, template: str, case_vars: Mapping[str, Any]) -> str:
        if self.syntax == "nunjucks":
            return render_nunjucks(template, case_vars)
        return render_template(template, case_vars)

    def render(self, case_vars: Mapping[str, Any]) -> list[dict[str, str]]:
        """The prompt as chat messages with ``case_vars`` substituted (system first)."""
        return [
            {"role": m["role"], "content": self.render_text(m["content"], case_vars)}
            for m in self.prompt.templates()
        ]

    def request_params(self) -> dict[str, Any]:
        """Sampling and body options sent with each case (temperature only when set)."""
        body: dict[str, Any] = {}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.prompt.tools:
            body["tools"] = self.prompt.tools
        body.update(self.params)
        return body

    def chat_request(self, case: Case, model: str, **params: Any) -> ChatRequest:
        """A ready-to-send request for ``case``: rendered messages, tools, sampling options."""
        body: dict[str, Any] = {"model": model, "messages": self.render(case.vars),
                                **self.request_params()}
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
    """Read and validate one eval set file; raise ConfigError(file, field, reason).
    (promptfoo configs too: devloop.evals.files.load_one.)"""
    path = Path(path)
    data = load_yaml12(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "an eval set must be a mapping")
    try:
        evalset = EvalSet.model_validate(data)
    except ValidationError as err:
        raise _config_error(path, err) from None
    evalset._source = path
    return evalset


def promptfoo_config_for(path: Path) -> Path | None:
    """The promptfoo config a file belongs to (a prompt, test or var file in its folder)."""
    return _promptfoo_config_in(path if path.is_dir() else path.parent)


def _promptfoo_config_in(folder: Path) -> Path | None:
    for name in ("promptfooconfig.yaml", "promptfooconfig.yml", "promptfooconfig.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_evalsets(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders to the ``*.yaml``/``*.yml`` files in them (sorted); keep files as given.
    A path that does not exist raises ConfigError."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            config = _promptfoo_config_in(p)
            if config is not None:  # a promptfoo folder: its test files are not eval sets
                found.append(config)
                continue
            found.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
            found.extend(c for q in sorted(p.iterdir())
                         if q.is_dir() and (c := _promptfoo_config_in(q)) is not None)
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError(p, "", "no such file or folder")
    return found
