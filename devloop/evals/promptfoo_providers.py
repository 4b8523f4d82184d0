"""promptfoo providers as devloop reads them: the provider id as a litellm model name, and its
``config`` as promptfoo's OpenAI provider sends it (``max_tokens`` 1024 unless set,
``temperature`` only when non-zero, ``response_format``, ``seed``, ``stop``... as they are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devloop.config import ConfigError
from devloop.evals.promptfoo_tests import read_text
from devloop.evals.yaml12 import loads

PROMPTFOO_MAX_TOKENS = 1024  # what promptfoo's OpenAI provider sends when the config sets none
# Provider config keys sent in the request body as they are (promptfoo's OpenAI provider).
BODY_KEYS = ("seed", "top_p", "presence_penalty", "frequency_penalty", "stop", "tools",
             "tool_choice", "response_format", "functions", "function_call", "logit_bias",
             "reasoning_effort", "max_completion_tokens", "user", "n")
# Provider config keys that change where or how devloop connects, not the body.
CONNECTION_KEYS = ("apiBaseUrl", "apiHost")
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


def first_provider(config: Path, raw: Any) -> tuple[str | None, dict[str, Any], int]:
    """(litellm model, provider config, how many providers there are)."""
    items = raw if isinstance(raw, list) else ([raw] if raw else [])
    if not items:
        return None, {}, 0
    first = items[0]
    if isinstance(first, dict) and "id" not in first and len(first) == 1:  # {id: {config}}
        (pid, body), = first.items()
        first = {"id": pid, **(body or {})}
    if isinstance(first, str):
        first = {"id": first}
    if not (isinstance(first, dict) and isinstance(first.get("id"), str)):
        raise ConfigError(config, "providers.0", "a provider must be an id or {id, config}")
    pid = first["id"]
    if pid.startswith(("file://", "exec:", "python:", "http:", "https:", "webhook:")):
        raise ConfigError(config, "providers.0", f"{pid}: script and HTTP providers are not "
                                                 "supported; use a model provider id")
    return provider_to_model(pid), dict(first.get("config") or {}), len(items)


def request_settings(config: Path, provider_config: dict[str, Any]
                     ) -> tuple[dict[str, Any], list[str]]:
    """EvalSet fields from a provider config, as promptfoo's OpenAI provider sends them;
    plus a note for each key devloop does not send."""
    body: dict[str, Any] = {}
    temperature = provider_config.get("temperature")
    body["temperature"] = temperature if temperature else None  # promptfoo omits 0
    body["max_tokens"] = provider_config.get("max_tokens") or PROMPTFOO_MAX_TOKENS
    params: dict[str, Any] = {}
    for key in BODY_KEYS:
        if provider_config.get(key) is not None:
            value = provider_config[key]
            if key == "response_format" and isinstance(value, str) and value.startswith(
                    "file://"):
                target = (config.parent / value.removeprefix("file://")).resolve()
                value = loads(read_text(config, target, "providers.0.config.response_format"))
            params[key] = value
    params.update(provider_config.get("passthrough") or {})
    body["params"] = params
    base = provider_config.get("apiBaseUrl") or provider_config.get("apiHost")
    if base:
        body["api_base"] = base if "://" in base else f"https://{base}/v1"
    notes = [f"{config}: providers.0.config.{key} is not used by devloop"
             for key in provider_config
             if key not in (*BODY_KEYS, *CONNECTION_KEYS, "temperature", "max_tokens",
                            "passthrough")]
    return body, notes


