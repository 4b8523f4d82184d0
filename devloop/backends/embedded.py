"""The embedded tier: llama-cpp-python in this process (the runner is llama_runner.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from devloop.backends.base import Backend, sampling_kwargs
from devloop.backends.llama_runner import (  # noqa: F401 - re-exported
    DEFAULT_MODEL,
    DONE,
    EMBEDDED_OPTIONS,
    LlamaRunner,
    default_gguf,
    grammar_for,
    message_dicts,
)
from devloop.backends.speculative import chat_kind
from devloop.config import Settings, TierConfig
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


class EmbeddedBackend(Backend):
    kind = "embedded"

    def __init__(self, tier: str, config: TierConfig, settings: Settings | None = None) -> None:
        super().__init__(tier, config)
        path = Path(config.model_path).expanduser() if config.model_path else default_gguf()
        self.runner = LlamaRunner(path, config.n_ctx, settings=settings)
        self._embedder: LlamaRunner | None = None
        self._facts: tuple[int | None, bool] | None = None

    def default_capabilities(self) -> Capabilities:
        """No tools and no images (SmolLM2 has neither); JSON and JSON schemas through
        llama.cpp grammars; FIM when the vocabulary has its tokens; the context is the one
        allocated (at most what the model was trained for, read from the GGUF header)."""
        if self._facts is None:
            from devloop.backends.gguf import model_facts

            self._facts = model_facts(self.runner.path)
        trained, fim = self._facts
        ctx = min(self.runner.n_ctx, trained) if trained else self.runner.n_ctx
        return Capabilities(tools=False, parallel_tool_calls=False, vision=False,
                            json_object=True, json_schema=True, fim=fim, logprobs=False,
                            max_n=1, context_length=ctx, echo=True,
                            options=frozenset(EMBEDDED_OPTIONS))

    async def load(self, model: str, unload: bool) -> None:
        await self.runner.call(self.runner.unload if unload else self.runner._load)

    @property
    def embedder(self) -> LlamaRunner:
        if self._embedder is None:
            self._embedder = LlamaRunner(self.runner.path, self.runner.n_ctx, embedding=True)
        return self._embedder

    async def close(self) -> None:
        self.runner.close()
        if self._embedder:
            self._embedder.close()

    # -- prompts ------------------------------------------------------------------------
    async def _chat_prompt(self, req: ChatRequest) -> tuple[str, dict[str, Any]]:
        prompt, stops = await self.runner.call(self.runner.render_chat, message_dicts(req.messages))
        kwargs = self._kwargs(req, req.token_limit())
        kwargs["stop"] = [*kwargs.get("stop", []), *stops]  # type: ignore[list-item]
        grammar = grammar_for(req.response_format)
        if grammar is not None:
            kwargs["grammar"] = grammar
        return prompt, kwargs

    async def _completion_prompt(self, req: CompletionRequest) -> tuple[str, dict[str, Any]]:
        kwargs = self._kwargs(req, req.max_tokens or 16)
        if req.echo:
            kwargs["echo"] = True
        if req.suffix:
            prompt = await self.runner.call(self.runner.fim_prompt, req.prompt_text(), req.suffix)
            return prompt, kwargs
        return req.prompt_text(), kwargs

    @staticmethod
    def _kwargs(req: ChatRequest | CompletionRequest, limit: int | None) -> dict[str, Any]:
        kwargs = sampling_kwargs(req, limit)
        options = (req.native or {}).get("options") or {}
        for theirs, ours in EMBEDDED_OPTIONS.items():  # Ollama options llama.cpp takes
            if options.get(theirs) is not None and ours:
                kwargs[ours] = options[theirs]
        kwargs.setdefault("max_tokens", 512)
        kwargs.setdefault("temperature", 0.8)
        return kwargs

    # -- generation -----------------------------------------------------------------------
    @staticmethod
    def _kind(req: ChatRequest | CompletionRequest) -> str:
        """fim, completion, edit (chat carrying code to rework) or chat: see speculative.py."""
        if isinstance(req, CompletionRequest):
            return "fim" if req.suffix else "completion"
        users = [m for m in req.messages if m.role == "user"]
        return chat_kind(users[-1].text()) if users else "chat"

    async def chat(self, req: ChatRequest, model: str,
                   forward_headers: dict[str, str] | None = None) -> Completion:
        prompt, kwargs = await self._chat_prompt(req)
        out = self._completion(await self.runner.call(self.runner.generate, prompt, kwargs,
                                                         self._kind(req)), model)
        await self._keep_alive(req)
        return out

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        prompt, kwargs = await self._completion_prompt(req)
        out = self._completion(await self.runner.call(self.runner.generate, prompt, kwargs,
                                                         self._kind(req)), model)
        await self._keep_alive(req)
        return out

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._chat_prompt(req)
        async for delta in self._stream(prompt, kwargs, self._kind(req)):
            yield delta
        await self._keep_alive(req)

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._completion_prompt(req)
        async for delta in self._stream(prompt, kwargs, self._kind(req)):
            yield delta
        await self._keep_alive(req)

    async def _keep_alive(self, req: ChatRequest | CompletionRequest) -> None:
        """Ollama's ``keep_alive: 0``: free the model once the answer is done."""
        if (req.native or {}).get("keep_alive") in (0, "0", "0s", "0m"):
            await self.runner.call(self.runner.unload)

    async def _stream(self, prompt: str, kwargs: dict[str, Any],
                      kind: str = "chat") -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        task = asyncio.ensure_future(
            self.runner.call(self.runner.generate_stream, prompt, kwargs, emit, cancelled, kind)
        )
        try:
            while True:
                item = await queue.get()
                if item is DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()  # the client went away: stop generating
            await asyncio.shield(task)

    @staticmethod
    def _completion(result: dict[str, Any], model: str) -> Completion:
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice.get("text") or "",
            model=model,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                        usage.get("cached_tokens", 0)),
        )

    async def embed(self, texts: list[str], model: str,
                    forward_headers: dict[str, str] | None = None) -> Embeddings:
        vectors, tokens = await self.embedder.call(self.embedder.embed, texts)
        return Embeddings(vectors, model, Usage(tokens, 0))

    async def health(self) -> Health:
        path = self.runner.path
        if not path.is_file():
            return Health(False, f"model file missing: {path}")
        return Health(True, self.state_detail(), 0.0, self.config.all_models())

    def state_detail(self) -> str:
        """The model file and whether it is in memory (a call or an Ollama load loads it)."""
        state = "loaded" if self.runner.loaded_at else "not loaded yet (loads on first call)"
        return f"{self.runner.path.name}, {state}"
