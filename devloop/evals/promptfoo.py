"""Read a promptfoo config (``promptfooconfig.yaml``, or a folder holding one) as devloop eval
sets, the way promptfoo 0.115 reads it.

``prompts`` (inline text, chat-message JSON, ``file://`` or bare paths to .txt/.md/.j2 files
split on ``---`` lines and trimmed, .json/.yaml/.jsonl chat prompts), ``providers`` (the first
is the production model; its ``config`` is passed through as promptfoo's OpenAI provider
sends it: ``max_tokens`` 1024 unless set, ``temperature`` only when non-zero,
``response_format``, ``seed``, ``stop``...), ``tests`` (see :mod:`devloop.evals.promptfoo_tests`),
``defaultTest`` (vars, assert, threshold, ``options.provider`` for the grader,
``options.transform``), ``assertionTemplates`` with ``$ref``. Templates are Nunjucks. Each
prompt becomes one eval set, so ``devloop eval promptfooconfig.yaml`` runs what
``promptfoo eval`` runs against the first provider.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devloop.config import ConfigError
from devloop.evals.evalset import EvalSet
from devloop.evals.promptfoo_providers import first_provider, provider_to_model, request_settings
from devloop.evals.promptfoo_tests import (
    SCRIPT_SUFFIXES,
    TEST_OPTIONS,
    expand_glob,
    finish_vars,
    load_var,
    prepare_assertions,
    read_tests,
    read_text,
    var_combinations,
)
from devloop.evals.yaml12 import load_yaml12, loads

__all__ = ["provider_to_model"]

CONFIG_NAMES = ("promptfooconfig.yaml", "promptfooconfig.yml", "promptfooconfig.json")
# Top-level promptfoo keys that only affect promptfoo's own UI or storage.
IGNORED_KEYS = ("description", "sharing", "outputPath", "writeLatestResults", "metadata",
                "tags", "evaluateOptions", "env", "derivedMetrics", "commandLineOptions")
KNOWN_KEYS = {"prompts", "providers", "tests", "defaultTest", "assertionTemplates",
              "targets", *IGNORED_KEYS}

def config_file(path: Path) -> Path:
    """A folder stands for the promptfoo config inside it."""
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return path / name
        raise ConfigError(path, "", "no promptfooconfig.yaml in this folder")
    return path


def is_promptfoo_config(path: Path, data: Any = None) -> bool:
    """A promptfoo config by name, or by having ``prompts`` and ``tests`` keys."""
    if path.name.startswith("promptfooconfig"):
        return True
    return isinstance(data, dict) and "prompts" in data and "tests" in data and "cases" not in data


def deref(node: Any, root: Any, config: Path, where: str = "") -> Any:
    """Resolve JSON pointers (``$ref: "#/assertionTemplates/x"``) as promptfoo does."""
    if isinstance(node, list):
        return [deref(v, root, config, f"{where}.{i}".lstrip(".")) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ConfigError(config, f"{where}.$ref", f"{ref}: only local #/ references are "
                                                       "supported")
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ConfigError(config, f"{where}.$ref", f"{ref} does not exist")
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        resolved = deref(target, root, config, where)
        return {**resolved, **rest} if isinstance(resolved, dict) else resolved
    return {k: deref(v, root, config, f"{where}.{k}".lstrip(".")) for k, v in node.items()}


# -- prompts ----------------------------------------------------------------------------------
def maybe_file_path(text: str) -> bool:
    """promptfoo's maybeFilePath: a one-line string that looks like a path."""
    if "\n" in text or text.startswith(("portkey://", "langfuse://", "helicone://")):
        return False
    return (text.startswith("file://") or "/" in text or "\\" in text or "*" in text
            or re.search(r"\.[A-Za-z0-9]{2,4}$", text) is not None)


def _prompts_from_file(config: Path, target: Path, label: str | None, field: str
                       ) -> list[tuple[str, str]]:
    suffix = target.suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        raise ConfigError(config, field, f"{target.name}: prompt functions are not supported")
    text = read_text(config, target, field)
    if suffix == ".json":
        return [(label or target.name, text)]
    if suffix in (".yaml", ".yml"):
        return [(label or target.name, json.dumps(loads(text), ensure_ascii=False))]
    if suffix == ".jsonl":
        return [(label or f"{target.name}#{n}", line) for n, line in
                enumerate(text.splitlines(), start=1) if line.strip()]
    if suffix in (".txt", ".md", ".j2", ""):
        out, buffer = [], []
        for line in [*text.splitlines(), "---"]:
            if line.strip() == "---":
                raw = "\n".join(buffer).strip()
                if raw:
                    out.append((label or f"{target.name}#{len(out) + 1}", raw))
                buffer = []
            else:
                buffer.append(line)
        if len(out) == 1 and not label:
            out = [(target.name, out[0][1])]
        return out
    raise ConfigError(config, field, f"{target.name}: prompt files must be .txt, .md, .j2, "
                                     ".json, .jsonl or .yaml")


def read_prompts(config: Path, raw: Any) -> list[tuple[str, str]]:
    """(label, raw prompt) for each prompt, as promptfoo's processPrompts reads them."""
    if isinstance(raw, dict):  # the old {path: label} form
        raw = [{"raw": k, "label": v} for k, v in raw.items()]
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        field = f"prompts.{i}" if isinstance(raw, list) else "prompts"
        label = None
        if isinstance(item, dict):
            label = item.get("label")
            item = item.get("raw", item.get("id"))
        if not isinstance(item, str):
            raise ConfigError(config, field, "a prompt must be text, a file:// path or "
                                             "{raw|id, label}")
        if maybe_file_path(item):
            target = (config.parent / item.removeprefix("file://")).resolve()
            if item.startswith("file://") or target.exists() or "*" in item:
                for path in expand_glob(config, config.parent, item, field):
                    out.extend(_prompts_from_file(config, path, label, field))
                continue
        out.append((label or f"prompt-{len(out) + 1}", item))
    return out


def _chat(raw: str) -> list[dict[str, Any]] | None:
    """promptfoo's parseChatPrompt: a JSON list of messages (or YAML ``- role:``)."""
    text = raw.strip()
    data: Any = None
    if text.startswith("- role:"):
        data = loads(text)
    elif text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
    if isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
        return data
    return None


def prompt_model(config: Path, raw: str, field: str) -> dict[str, Any]:
    """A promptfoo prompt -> devloop ``prompt: {system, messages}`` (templates unrendered)."""
    messages = _chat(raw)
    if messages is None:
        return {"messages": [{"role": "user", "content": raw}]}
    out: list[dict[str, str]] = []
    for m in messages:
        if not isinstance(m.get("content"), str):
            raise ConfigError(config, field, "message content must be text (multi-part "
                                             "content is not supported)")
        out.append({"role": str(m["role"]), "content": m["content"]})
    system = None
    if out and out[0]["role"] == "system":
        system = out.pop(0)["content"]
    return {"system": system, "messages": out}


def _options(config: Path, options: Any, field: str) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(config, field, "must be a mapping")
    for key in options:
        if key not in TEST_OPTIONS:
            raise ConfigError(config, f"{field}.{key}", "this option is not supported by "
                                                        "devloop (supported: "
                                                        + ", ".join(sorted(TEST_OPTIONS)) + ")")
    return options


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]


def build_cases(config: Path, tests: list[dict[str, Any]], default: dict[str, Any]
                ) -> list[dict[str, Any]]:
    """Eval set cases: defaultTest merged, list vars expanded, file vars read, ids unique."""
    default_options = _options(config, default.get("options"), "defaultTest.options")
    cases: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for n, test in enumerate(tests):
        field = f"tests.{n}"
        options = {**default_options, **_options(config, test.get("options"),
                                                  f"{field}.options")}
        raw_vars = test.get("vars") or {}
        if not isinstance(raw_vars, dict):
            raise ConfigError(config, f"{field}.vars", "must be a mapping")
        merged = {**(default.get("vars") or {}), **raw_vars}
        grader = options.get("provider")
        asserts = [*prepare_assertions(config, default.get("assert"), "defaultTest.assert",
                                       grader),
                   *prepare_assertions(config, test.get("assert"), f"{field}.assert", grader)]
        combos = ([merged] if options.get("disableVarExpansion")
                  else var_combinations(config, merged, field))
        base_id = str(test.get("id") or _slug(str(test.get("description") or ""))
                      or f"test-{n + 1}")
        for combo in combos:
            loaded = {k: load_var(config, k, v, field) for k, v in combo.items()}
            varied = [k for k in combo if isinstance(merged[k], list)
                      or (isinstance(merged[k], str) and any(c in merged[k] for c in "*?["))]
            case_id = base_id if len(combos) == 1 else base_id + "[" + ",".join(
                f"{k}={Path(str(combo[k])).name[:24]}" for k in varied) + "]"
            used[case_id] = used.get(case_id, 0) + 1
            if used[case_id] > 1:  # promptfoo allows repeated descriptions
                case_id = f"{case_id}#{used[case_id]}"
            case: dict[str, Any] = {"id": case_id, "vars": finish_vars(loaded),
                                    "assert": asserts}
            if test.get("description"):
                case["description"] = str(test["description"])
            threshold = test.get("threshold", default.get("threshold"))
            if threshold is not None:
                case["threshold"] = threshold
            if options.get("transform"):
                case["transform"] = str(options["transform"])
            cases.append(case)
    return cases


def _validation_error(config: Path, err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    head, sep, rest = msg.partition(": ")
    if sep and re.fullmatch(r"[\w.\-]+", head):  # validators say "field: reason"
        loc, msg = (f"{loc}.{head}" if loc and not head.startswith(loc) else head), rest
    loc = re.sub(r"^cases\b", "tests", loc)
    return ConfigError(config, loc or "(top level)", msg)


def load_promptfoo(path: str | Path) -> list[EvalSet]:
    """One eval set per prompt of a promptfoo config; ConfigError(file, field, reason)."""
    path = config_file(Path(path))
    data = load_yaml12(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "a promptfoo config must be a mapping")
    data = deref(data, data, path)
    for key in data:
        if key not in KNOWN_KEYS:
            raise ConfigError(path, key, "this promptfoo key is not supported by devloop")
    if "prompts" not in data:
        raise ConfigError(path, "prompts", "required")
    model, provider_config, n_providers = first_provider(
        path, data.get("providers", data.get("targets")))
    settings, notes = request_settings(path, provider_config)
    if n_providers > 1:
        notes.append(f"{path}: devloop runs the first of {n_providers} providers ({model})")
    default = data.get("defaultTest") or {}
    if isinstance(default, str):
        default = load_yaml12((path.parent / default.removeprefix("file://")).resolve())
    if not isinstance(default, dict):
        raise ConfigError(path, "defaultTest", "must be a mapping")
    tests = read_tests(path, data.get("tests"))
    if not tests:
        raise ConfigError(path, "tests", "needs at least one test")
    cases = build_cases(path, tests, default)
    prompts = read_prompts(path, data["prompts"])
    if not prompts:
        raise ConfigError(path, "prompts", "no prompts found")
    name = str(data.get("description") or path.parent.name or path.stem)
    grader = (default.get("options") or {}).get("provider")
    sets: list[EvalSet] = []
    for i, (label, raw) in enumerate(prompts):
        body: dict[str, Any] = {
            "name": name if len(prompts) == 1 else f"{name}:{label}",
            "description": data.get("description"),
            "production_model": model,
            "syntax": "nunjucks",
            "prompt": prompt_model(path, raw, f"prompts.{i}"),
            "cases": cases,
            **settings,
        }
        if grader is not None:
            body["grader"] = grader if isinstance(grader, str) else str(grader.get("id"))
        try:
            evalset = EvalSet.model_validate(body)
        except ValidationError as err:
            raise _validation_error(path, err) from None
        evalset._source = path
        evalset._notes = list(notes) if i == 0 else []
        sets.append(evalset)
    used = {name for es in sets for name in es.variables()}
    for i, es in enumerate(sets):  # a var one prompt uses is used; say it once per config
        es._also_used = used if i == 0 else None
    return sets
