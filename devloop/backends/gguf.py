"""Read a GGUF file's metadata (context length, special tokens) without loading the model.

The header is a list of typed key/value pairs before the tensors; reading it takes a few
milliseconds even for the 49k-entry token list, so capabilities are known at startup.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
FIM_TOKENS = (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
              ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    return f.read(n).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(f, _SCALARS[kind])
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, n = _read(f, "<I"), _read(f, "<Q")
        return [_value(f, item) for _ in range(n)]
    raise ValueError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path) -> dict[str, Any]:
    """All key/value pairs of a GGUF header."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        _read(f, "<I")  # version
        _read(f, "<Q")  # tensor count
        n_kv = _read(f, "<Q")
        out: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(f)
            out[key] = _value(f, _read(f, "<I"))
        return out


def model_facts(path: Path) -> tuple[int | None, bool]:
    """(trained context length, whether the vocabulary has fill-in-the-middle tokens)."""
    try:
        meta = read_metadata(path)
    except (OSError, ValueError):
        return None, False
    arch = meta.get("general.architecture", "")
    ctx = meta.get(f"{arch}.context_length")
    tokens = set(meta.get("tokenizer.ggml.tokens") or ())
    fim = any(all(t in tokens for t in group) for group in FIM_TOKENS)
    return (int(ctx) if isinstance(ctx, int) else None), fim
