"""The frontier tier through litellm, imported on first use (it takes seconds to import)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from devloop.backends.base import (
    Backend,
    BackendError,
    CredentialError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from devloop.backends.native import NativeUpstream, speaks
from devloop.config import TierConfig
from devloop.types import (
    Capabilities,
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    Embeddings,
    Health,
    Usage,
)
from devloop.usage import usage_from

# The variables litellm reads these providers' keys from (any one will do), the first the one
# to name in an error; other providers are left to litellm.validate_environment.
KEY_ENVS = {"anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
            "openai": ("OPENAI_API_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
_PASSTHROUGH = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty",
                "tools", "tool_choice", "response_format", "user", "n", "logprobs",
                "top_logprobs", "parallel_tool_calls")


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch at runtime
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def _usage(data: Any) -> Usage | None:
    return usage_from(data)  # cache reads/writes (5m/1h), reasoning tokens


class LiteLLMBackend(Backend):
    kind = "litellm"

    def __init__(self, tier: str, config: TierConfig) -> None:
        super().__init__(tier, config)
        self.api_base = config.api_base or config.base_url
        self.same_protocol = NativeUpstream(tier, config)  # same-protocol pass-through (native.py)

    def _native(self, req: ChatRequest, model: str) -> bool:
        call = req.passthrough
        return call is not None and speaks(self.config, model, call.protocol)

    async def close(self) -> None:
        await self.same_protocol.close()

    def default_capabilities(self) -> Capabilities:
        """From litellm's model map (read as JSON: no litellm import): tools, vision,
        response schemas and the context window of the configured model."""
        from devloop.pricing import load_cost_map

        cmap = load_cost_map()
        model = self.config.model
        entry = cmap.get(model) or cmap.get(model.split("/", 1)[-1]) or {}
        openai_like = model.startswith("openai/") or self.api_base is not None
        known = bool(entry)
        return Capabilities(
            tools=bool(entry.get("supports_function_calling", not known)),
            parallel_tool_calls=bool(entry.get("supports_parallel_function_calling",
                                               not known)),
            vision=bool(entry.get("supports_vision", not known)),
            json_object=True,
            json_schema=bool(entry.get("supports_response_schema", not known)),
            fim=False, logprobs=openai_like, max_n=16 if openai_like else 1,
            context_length=entry.get("max_input_tokens") or None)

    def _key_env(self, model: str) -> str:
        """Where the provider key is read from: the profile's ``api_key_env``, else the
        variable litellm reads (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ...)."""
        provider = model.split("/", 1)[0]
        return self.config.api_key_env or KEY_ENVS.get(provider, (
            f"{provider.upper()}_API_KEY",))[0]

    def _require_key(self, litellm: Any, model: str) -> None:
        """Refuse a call whose provider key is missing or empty before litellm makes it
        (litellm answers a missing OpenAI key with a retryable 500)."""
        if self.api_base:
            return  # a local or test upstream takes any key
        names = ((self.config.api_key_env,) if self.config.api_key_env else
                 KEY_ENVS.get(model.split("/", 1)[0]))
        if names is None:  # other providers: what litellm checks (it counts empty as set)
            found = litellm.validate_environment(model=model)
            missing = found.get("missing_keys") or []
            # Cloud credentials (AWS, Vertex, Azure) have other sources: litellm decides.
            if found.get("keys_in_environment") or not missing or not all(
                    k.endswith("_API_KEY") for k in missing):
                return
            names = (" or ".join(missing),)
        if not any(os.environ.get(name) for name in names):
            raise CredentialError(self.tier, names[0])

    def _kwargs(self, req: ChatRequest | CompletionRequest, model: str) -> dict[str, Any]:
        self._require_key(import_litellm(), model)
        kw: dict[str, Any] = {"model": model, "timeout": self.config.timeout, "num_retries": 0}
        for name in _PASSTHROUGH:
            value = getattr(req, name, None)
            if value is not None:
                kw[name] = value
        limit = req.token_limit()
        if limit is not None:
            kw["max_tokens"] = limit
        if req.stop_list():
            kw["stop"] = req.stop_list()
        if self.api_base:
            kw["api_base"] = self.api_base
        if self.config.api_key_env and os.environ.get(self.config.api_key_env):
            kw["api_key"] = os.environ[self.config.api_key_env]
        elif self.api_base and model.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
            kw["api_key"] = "devloop-local"  # local OpenAI-compatible servers take any key
        return kw

    def _error(self, exc: Exception, model: str) -> BackendError:
        litellm = import_litellm()
        name = type(exc).__name__
        if isinstance(exc, CredentialError):
            return exc
        if isinstance(exc, litellm.AuthenticationError):  # its text may quote part of the key
            return CredentialError(self.tier, self._key_env(model), refused=True)
        if isinstance(exc, litellm.APIConnectionError):
            return UpstreamUnavailable(f"{self.tier}: {name}: {str(exc)[:300]}")
        if isinstance(exc, litellm.Timeout):
            return UpstreamTimeout(f"{self.tier}: timed out")
        status = int(getattr(exc, "status_code", 502) or 502)
        return BackendError(f"{self.tier}: {name}: {str(exc)[:300]}",
                            status if 400 <= status < 500 else 502, status == 429 or status >= 500)

    @staticmethod
    def _messages(req: ChatRequest) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in req.messages]

    async def chat(self, req: ChatRequest, model: str,
                   forward_headers: dict[str, str] | None = None) -> Completion:
        if self._native(req, model):
            return await self.same_protocol.call(req, model)
        litellm = import_litellm()
        try:
            resp = await litellm.acompletion(messages=self._messages(req), **self._kwargs(req, model))
        except Exception as exc:  # noqa: BLE001 - translated to a typed error
            raise self._error(exc, model) from None
        choice = resp.choices[0]
        calls = getattr(choice.message, "tool_calls", None)
        logprobs = getattr(choice, "logprobs", None)
        return Completion(
            choice.message.content or "", model, choice.finish_reason or "stop",
            _usage(getattr(resp, "usage", None)) or Usage(reported=False),
            [c.model_dump() for c in calls] if calls else None,
            logprobs.model_dump() if hasattr(logprobs, "model_dump") else logprobs,
        )

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        if self._native(req, model):
            async for delta in self.same_protocol.stream(req, model):
                yield delta
            return
        litellm = import_litellm()
        finish: str | None = None
        try:
            stream = await litellm.acompletion(
                messages=self._messages(req), stream=True, stream_options={"include_usage": True},
                **self._kwargs(req, model),
            )
            async for chunk in stream:
                usage = _usage(getattr(chunk, "usage", None))
                for choice in chunk.choices or ():
                    finish = choice.finish_reason or finish
                    text = getattr(choice.delta, "content", None) or ""
                    calls = getattr(choice.delta, "tool_calls", None)
                    pieces = [c.model_dump(exclude_none=True) if hasattr(c, "model_dump")
                              else dict(c) for c in calls] if calls else None
                    if text or pieces:
                        yield Delta(text=text, tool_calls=pieces)
                if usage is not None and usage.total_tokens:
                    yield Delta(finish_reason=finish or "stop", usage=usage)
                    return
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, model) from None
        yield Delta(finish_reason=finish or "stop")

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        litellm = import_litellm()
        try:
            resp = await litellm.atext_completion(prompt=req.prompt_text(), **self._kwargs(req, model))
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, model) from None
        choice = resp.choices[0]
        return Completion(choice.text or "", model, choice.finish_reason or "stop",
                          _usage(getattr(resp, "usage", None)) or Usage(reported=False))

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        done = await self.complete(req, model)  # providers rarely stream legacy completions
        yield Delta(text=done.text)
        yield Delta(finish_reason=done.finish_reason, usage=done.usage)

    async def embed(self, texts: list[str], model: str,
                    forward_headers: dict[str, str] | None = None) -> Embeddings:
        litellm = import_litellm()
        kw: dict[str, Any] = {"model": self.config.embedding_model or model, "input": texts}
        self._require_key(litellm, kw["model"])
        if self.api_base:
            kw["api_base"] = self.api_base
            kw.setdefault("api_key", "devloop-local")
        try:
            resp = await litellm.aembedding(**kw)
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, model) from None
        vectors = [item["embedding"] for item in resp.data]
        return Embeddings(vectors, model, _usage(getattr(resp, "usage", None)) or Usage())

    async def health(self) -> Health:
        # A paid provider is not probed (that could cost money); a key is checked for.
        provider = self.config.model.split("/", 1)[0]
        env = self.config.api_key_env or f"{provider.upper()}_API_KEY"
        if self.api_base or os.environ.get(env):
            return Health(True, "configured", None, self.config.all_models())
        return Health(False, f"no API key: set {env}", None, self.config.all_models())
