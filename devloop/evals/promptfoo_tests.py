"""promptfoo tests as promptfoo 0.115 reads them: test files (YAML, JSON, JSONL, CSV), `file://`
var and assertion values (relative to the config), list vars expanded into one test per
combination, var values with their final newline stripped, `defaultTest` merged in.

Everything here returns plain data (dicts) that :mod:`devloop.evals.promptfoo` turns into
eval set cases; a bad input raises ConfigError(file, field, reason).
"""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path
from typing import Any

from devloop.config import ConfigError
from devloop.evals.yaml12 import load_yaml12, loads

SCRIPT_SUFFIXES = (".js", ".cjs", ".mjs", ".ts", ".py")
# Keys of a test's ``options`` that devloop honours; others are refused by name.
TEST_OPTIONS = frozenset({"provider", "transform", "disableVarExpansion"})
_VAR_REF = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# promptfoo's assertionFromString: ``type(threshold):value`` (see its CSV docs).
_ASSERT_STRING = re.compile(
    r"^(not-)?(equals|contains-any|contains-all|icontains-any|icontains-all|contains-json|"
    r"is-json|regex|icontains|contains|starts-with|levenshtein|similar|word-count|"
    r"finish-reason|latency|cost|is-valid-json-schema)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")


def resolve(base: Path, ref: str) -> Path:
    return (base / ref.removeprefix("file://")).resolve()


def read_text(config: Path, target: Path, field: str) -> str:
    try:
        return target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(config, field, f"{target}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(config, field, f"{target}: not UTF-8 text") from None


def expand_glob(config: Path, base: Path, ref: str, field: str) -> list[Path]:
    target = resolve(base, ref)
    if any(ch in str(target) for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(target), recursive=True))
        if not found:
            raise ConfigError(config, field, f"no files match {ref}")
        return found
    return [target]


# -- tests ------------------------------------------------------------------------------------
def read_tests(config: Path, raw: Any) -> list[dict[str, Any]]:
    """The ``tests`` entry: inline mappings, file paths (globs too), or one path."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str | dict) else raw
    if not isinstance(items, list):
        raise ConfigError(config, "tests", "must be a list of tests or a file:// path")
    tests: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        field = f"tests.{i}" if isinstance(raw, list) else "tests"
        if isinstance(item, dict):
            tests.append(item)
        elif isinstance(item, str):
            for target in expand_glob(config, config.parent, item, field):
                tests.extend(read_test_file(config, target, field))
        else:
            raise ConfigError(config, field, "a test must be a mapping or a file:// path")
    return tests


def read_test_file(config: Path, target: Path, field: str) -> list[dict[str, Any]]:
    suffix = target.suffix.lower()
    if suffix == ".csv":
        return csv_tests(config, target, field)
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(read_text(config, target, field).splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(target, f"line {n}", f"invalid JSON: {exc.msg}") from None
        return out
    if suffix in (".yaml", ".yml", ".json"):
        loaded = load_yaml12(target)
        items = loaded if isinstance(loaded, list) else [loaded]
        if not all(isinstance(t, dict) for t in items):
            raise ConfigError(target, "(top level)", "a test file holds a list of tests")
        return items
    if suffix in SCRIPT_SUFFIXES:
        raise ConfigError(config, field, f"{target.name}: test generators (scripts) are not "
                                         "supported; write the tests as YAML, JSON or CSV")
    raise ConfigError(config, field, f"{target.name}: test files must be .yaml, .yml, .json, "
                                     ".jsonl or .csv")


def assertion_from_string(text: str) -> dict[str, Any]:
    """A CSV ``__expected`` cell as promptfoo reads it."""
    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"),
                         ("eval:", "javascript"), ("python:", "python"),
                         ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric")):
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix):].strip()}
    m = _ASSERT_STRING.match(text)
    if m is None:
        return {"type": "equals", "value": text}
    negate, kind, threshold, value = m.groups()
    out: dict[str, Any] = {"type": f"{negate or ''}{kind}"}
    if kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        out["value"] = [part.strip() for part in (value or "").split(",")]
    elif kind in ("is-json", "contains-json"):
        if value and value.strip():
            out["value"] = value.strip()
    elif value is not None:
        out["value"] = value.strip()
    if threshold is not None:
        out["threshold"] = float(threshold)
    elif kind in ("latency", "cost") and value:
        out["threshold"] = float(value)
        out.pop("value", None)
    return out


def csv_tests(config: Path, target: Path, field: str) -> list[dict[str, Any]]:
    text = read_text(config, target, field).removeprefix("\ufeff")
    rows = list(csv.DictReader(text.splitlines(keepends=True)))
    tests = []
    for row in rows:
        test: dict[str, Any] = {"vars": {}, "assert": []}
        for key, value in row.items():
            value = value or ""
            key = key.strip()
            if key.startswith("__expected"):
                if value.strip():
                    test["assert"].append(assertion_from_string(value.strip()))
            elif key == "__description":
                test["description"] = value
            elif key == "__threshold":
                test["threshold"] = float(value)
            elif key == "__metric":
                test["_metric"] = value
            elif key.startswith("__"):
                raise ConfigError(target, key, "this CSV column is not supported")
            else:
                test["vars"][key] = value
        metric = test.pop("_metric", None)
        if metric:
            for a in test["assert"]:
                a["metric"] = metric
        tests.append(test)
    return tests


# -- vars -------------------------------------------------------------------------------------
def var_combinations(config: Path, variables: dict[str, Any], field: str
                     ) -> list[dict[str, Any]]:
    """promptfoo's generateVarCombinations: a list of strings (or a file:// glob) gives one
    test per value; lists of other things stay one value."""
    combos: list[dict[str, Any]] = [{}]
    for key, value in variables.items():
        if isinstance(value, str) and value.startswith("file://"):
            paths = expand_glob(config, config.parent, value, f"{field}.vars.{key}")
            values: list[Any] = [f"file://{p}" for p in paths]
        elif isinstance(value, list) and value and isinstance(value[0], str):
            values = value
        else:
            values = [value]
        combos = [{**combo, key: v} for combo in combos for v in values]
    return combos


def load_var(config: Path, key: str, value: Any, field: str) -> Any:
    """A ``file://`` var value read as promptfoo reads it (text trimmed; YAML as JSON)."""
    if not (isinstance(value, str) and value.startswith("file://")):
        return value
    target = resolve(config.parent, value)
    suffix = target.suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        raise ConfigError(config, f"{field}.vars.{key}", f"{value}: vars computed by scripts "
                                                         "are not supported")
    text = read_text(config, target, f"{field}.vars.{key}")
    if suffix in (".yaml", ".yml"):
        return json.dumps(loads(text), ensure_ascii=False, separators=(",", ":"))
    return text.strip()


def finish_vars(variables: dict[str, Any]) -> dict[str, Any]:
    """The final newline of string values goes (promptfoo does this before rendering), then
    values that name other vars (``{{ other }}``) are resolved as promptfoo does."""
    out = {k: (v[:-1] if isinstance(v, str) and v.endswith("\n") else v)
           for k, v in variables.items()}
    for _ in range(5):
        changed = False
        for key, value in out.items():
            if not isinstance(value, str) or (m := _VAR_REF.search(value)) is None:
                continue
            if m.group(1) in out:
                from devloop.evals.templating import js_str

                out[key] = value.replace(m.group(0), js_str(out[m.group(1)]), 1)
                changed = True
        if not changed:
            break
    return out


# -- assertions ------------------------------------------------------------------------------
def load_assertion_value(config: Path, value: Any, field: str) -> Any:
    """``value: file://...`` on an assertion: JSON/YAML parsed, text trimmed."""
    if not (isinstance(value, str) and value.startswith("file://")):
        return value
    target = resolve(config.parent, value)
    suffix = target.suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        raise ConfigError(config, field, f"{value}: assertion scripts in files are not "
                                         "supported; write the code inline")
    if suffix not in (".json", ".yaml", ".yml", ".txt"):
        raise ConfigError(config, field, f"{value}: unsupported file type (promptfoo reads "
                                         ".json, .yaml, .yml and .txt assertion values)")
    text = read_text(config, target, field)
    if suffix == ".txt":
        return text.strip()
    try:
        return loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault
        raise ConfigError(target, "(top level)", f"cannot be parsed: {exc}") from None


def prepare_assertions(config: Path, raw: Any, field: str,
                       grader: Any = None) -> list[dict[str, Any]]:
    """Assertion mappings with file:// values loaded and the test's grader pinned."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(config, field, "must be a list of assertions")
    out = []
    for i, item in enumerate(raw):
        where = f"{field}.{i}"
        if not isinstance(item, dict):
            raise ConfigError(config, where, "an assertion must be a mapping with a type")
        if "type" not in item:
            raise ConfigError(config, f"{where}.type", "required (an assertion needs a type; "
                                                       "$ref templates need assertionTemplates)")
        a = dict(item)
        if "value" in a:
            a["value"] = load_assertion_value(config, a["value"], f"{where}.value")
        if "assert" in a:
            a["assert"] = prepare_assertions(config, a["assert"], f"{where}.assert", grader)
        kind = str(a["type"]).removeprefix("not-")
        if grader is not None and kind in ("llm-rubric", "similar") and "provider" not in a:
            a["provider"] = grader
        out.append(a)
    return out
