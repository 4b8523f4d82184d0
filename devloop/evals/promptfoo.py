"""Read a promptfoo config (``promptfooconfig.yaml``) as devloop eval sets.

The subset devloop's assertions cover: ``prompts`` (inline text, chat-message JSON, or
``file://`` text/JSON/YAML), ``providers`` (the first one is the production model; its
``config.temperature``/``max_tokens`` are kept), ``tests`` (inline or ``file://`` YAML/JSON
lists) and ``defaultTest`` (vars, assert and threshold merged into every test). Each prompt
becomes one eval set, so ``devloop eval promptfooconfig.yaml`` runs what ``promptfoo eval``
would run against the first provider.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devloop.config import ConfigError, load_yaml
from devloop.evals.evalset import EvalSet

# promptfoo provider prefixes -> litellm provider prefixes (where they differ).
PROVIDER_PREFIXES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azureopenai": "azure",
    "azure": "azure",
    "vertex": "vertex_ai",
    "google": "gemini",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "mistral": "mistral",
    "groq": "groq",
    "openrouter": "openrouter",
    "ollama": "ollama_chat",
    "together": "together_ai",
    "deepseek": "deepseek",
    "xai": "xai",
    "cohere": "cohere",
}
# promptfoo's API-shape infixes (openai:chat:gpt-4o), dropped in litellm names.
_SHAPES = {"chat", "completion", "messages", "embedding", "embeddings", "responses"}


def provider_to_model(provider: str) -> str:
    """``openai:chat:gpt-4o-mini`` -> ``openai/gpt-4o-mini``; litellm names pass through."""
    if ":" not in provider:
        return provider
    prefix, rest = provider.split(":", 1)
    head, _, tail = rest.partition(":")
    if tail and head in _SHAPES:
        rest = tail
    return f"{PROVIDER_PREFIXES.get(prefix, prefix)}/{rest}"


def is_promptfoo_config(path: Path, data: Any = None) -> bool:
    """A promptfoo config by name, or by having ``prompts`` and ``tests`` keys."""
    if path.name.startswith("promptfooconfig"):
        return True
    return isinstance(data, dict) and "prompts" in data and "tests" in data and "cases" not in data


def _read_ref(base: Path, ref: str, field: str) -> tuple[Path, str]:
    target = (base / ref.removeprefix("file://")).resolve()
    if any(ch in target.name for ch in "*?["):
        raise ConfigError(base / "promptfooconfig.yaml", field, "file globs are not supported")
    try:
        return target, target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(target, field, exc.strerror or str(exc)) from None


def _chat_messages(text: str) -> list[dict[str, Any]] | None:
    """A prompt written as a JSON list of chat messages, else None (plain text)."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
        return data
    return None


def _prompt_texts(config: Path, raw: Any) -> list[tuple[str, Any]]:
    """(label, text-or-messages) for each prompt."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        field = f"prompts.{i}"
        label = f"prompt-{i + 1}"
        if isinstance(item, dict):
            label = str(item.get("label") or item.get("id") or label)
            item = item.get("raw", item.get("id"))
        if not isinstance(item, str):
            raise ConfigError(config, field, "a prompt must be text, a file:// path or "
                                             "{raw|id, label}")
        if item.startswith("file://"):
            target, text = _read_ref(config.parent, item, field)
            if target.suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
                raise ConfigError(config, field, "prompt functions are not supported")
            if target.suffix in (".yaml", ".yml"):
                import yaml

                out.append((target.stem, yaml.safe_load(text)))
                continue
            label = target.stem if label.startswith("prompt-") else label
            item = text
        out.append((label, _chat_messages(item) or item))
    return out


def _prompt_model(config: Path, content: Any, field: str) -> dict[str, Any]:
    """promptfoo prompt -> devloop ``prompt: {system, messages}``."""
    if isinstance(content, str):
        return {"messages": [{"role": "user", "content": content}]}
    if not isinstance(content, list):
        raise ConfigError(config, field, "a prompt must be text or a list of chat messages")
    system: list[str] = []
    messages: list[dict[str, str]] = []
    for m in content:
        text = m.get("content")
        if not isinstance(text, str):
            raise ConfigError(config, field, "message content must be text")
        if m.get("role") == "system" and not messages:
            system.append(text)
        else:
            messages.append({"role": str(m.get("role")), "content": text})
    return {"system": "\n\n".join(system) or None, "messages": messages}


def _tests(config: Path, raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    tests: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item.startswith("file://"):
            target, text = _read_ref(config.parent, item, f"tests.{i}")
            if target.suffix not in (".yaml", ".yml", ".json"):
                raise ConfigError(target, "", "only YAML or JSON test files are supported")
            loaded = load_yaml(target)
            tests.extend(loaded if isinstance(loaded, list) else [loaded])
        elif isinstance(item, dict):
            tests.append(item)
        else:
            raise ConfigError(config, f"tests.{i}", "a test must be a mapping or a file:// path")
    return tests


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]


def _case(test: dict[str, Any], default: dict[str, Any], index: int) -> dict[str, Any]:
    case: dict[str, Any] = {
        "id": str(test.get("id") or _slug(str(test.get("description", ""))) or f"test-{index}"),
        "vars": {**(default.get("vars") or {}), **(test.get("vars") or {})},
        "assert": [*(default.get("assert") or []), *(test.get("assert") or [])],
    }
    if test.get("description"):
        case["description"] = str(test["description"])
    threshold = test.get("threshold", default.get("threshold"))
    if threshold is not None:
        case["threshold"] = threshold
    return case


def _first_provider(config: Path, raw: Any) -> tuple[str | None, dict[str, Any]]:
    items = raw if isinstance(raw, list) else ([raw] if raw else [])
    if not items:
        return None, {}
    first = items[0]
    if isinstance(first, str):
        return provider_to_model(first), {}
    if isinstance(first, dict) and isinstance(first.get("id"), str):
        return provider_to_model(first["id"]), dict(first.get("config") or {})
    raise ConfigError(config, "providers.0", "a provider must be an id or {id, config}")


def load_promptfoo(path: str | Path) -> list[EvalSet]:
    """One eval set per prompt of a promptfoo config; ConfigError(file, field, reason)."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "a promptfoo config must be a mapping")
    if "prompts" not in data:
        raise ConfigError(path, "prompts", "required")
    model, provider_config = _first_provider(path, data.get("providers"))
    default = data.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise ConfigError(path, "defaultTest", "must be a mapping")
    tests = _tests(path, data.get("tests"))
    if not tests:
        raise ConfigError(path, "tests", "needs at least one test")
    prompts = _prompt_texts(path, data["prompts"])
    name = str(data.get("description") or path.parent.name or path.stem)
    sets: list[EvalSet] = []
    for i, (label, content) in enumerate(prompts):
        body: dict[str, Any] = {
            "name": name if len(prompts) == 1 else f"{name}:{label}",
            "description": data.get("description"),
            "production_model": model,
            "prompt": _prompt_model(path, content, f"prompts.{i}"),
            "cases": [_case(t, default, n + 1) for n, t in enumerate(tests)],
        }
        for key in ("temperature", "max_tokens"):
            if provider_config.get(key) is not None:
                body[key] = provider_config[key]
        try:
            evalset = EvalSet.model_validate(body)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            if sep and re.fullmatch(r"[\w.\-]+", head):  # validators say "field: reason"
                loc, msg = (f"{loc}.{head}" if loc and not head.startswith(loc) else head), rest
            loc = re.sub(r"^cases\b", "tests", loc)
            raise ConfigError(path, loc or "(top level)", msg) from None
        evalset._source = path
        sets.append(evalset)
    return sets
