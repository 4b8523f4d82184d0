"""KV prefix reuse for the embedded model: the state of several recent prompts, not just the last.

llama-cpp-python reuses the KV cache of the immediately preceding prompt only. This module
keeps the KV state of several recent contexts (one llama.cpp sequence each, copied with
``llama_state_seq_get_data``), keyed by their tokens, in an LRU bounded in bytes; a request
restores the entry sharing the longest token prefix with it, so only its new tokens are
processed. Entries are optionally written under ``$DEVLOOP_HOME/kv-prefix/<model id>/`` so a
restart or a new ``devloop check`` process starts warm (the model id covers the weights file,
the context size and the llama-cpp-python version: a state is only valid for those).

``PrefixStore`` is plain bookkeeping (tokens, bytes, files) and knows nothing of llama.cpp;
``KVPrefixCache`` moves states in and out of a ``llama_cpp.Llama`` and runs on the model's
own thread, like every other llama.cpp call.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"DVKV1\n"
SUFFIX = ".kvp"
MB = 1024 * 1024


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens two token arrays share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


def tokens_key(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens, dtype=np.int32).tobytes()).hexdigest()[:32]


def model_id(path: Path, n_ctx: int, version: str) -> str:
    """Which states fit which model: the weights file (path, size, mtime), context, library."""
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{n_ctx}|{version}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Entry:
    key: str
    tokens: np.ndarray  # int32, the tokens whose KV the state holds
    size: int  # bytes of state
    state: bytes | None  # None: only on disk
    path: Path | None = None  # set once written to disk
    writing: bool = False  # a disk write is queued


@dataclass(slots=True)
class Stats:
    hits: int = 0
    misses: int = 0
    saves: int = 0
    evictions: int = 0
    disk_loads: int = 0
    reused_tokens: int = 0


class PrefixStore:
    """An LRU of token-prefix -> state bytes, bounded in RAM and (optionally) on disk."""

    def __init__(self, ram_bytes: int, disk_dir: Path | None = None, disk_bytes: int = 0,
                 min_new_tokens: int = 64) -> None:
        self.ram_bytes = ram_bytes
        self.disk_dir = disk_dir if disk_bytes > 0 else None
        self.disk_bytes = disk_bytes
        self.min_new_tokens = min_new_tokens
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # oldest first
        self.stats = Stats()
        self._lock = threading.Lock()  # entries are touched by the model and writer threads
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._indexed = False

    # -- looking up ---------------------------------------------------------------------------
    def best(self, tokens: np.ndarray) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with ``tokens``, and that length."""
        self._index_disk()
        best: Entry | None = None
        best_n = 0
        with self._lock:
            candidates = list(self.entries.values())
        for entry in candidates:
            n = common_prefix(entry.tokens, tokens)
            if n > best_n:
                best, best_n = entry, n
        return best, best_n

    def state_of(self, entry: Entry) -> bytes | None:
        """The entry's state bytes (read from disk when not in RAM); marks it recently used."""
        state = entry.state
        if state is None and entry.path is not None:
            try:
                with entry.path.open("rb") as fh:
                    fh.seek(_header_len(len(entry.tokens)))
                    state = fh.read()
                os.utime(entry.path)
            except OSError:  # evicted by another process meanwhile
                self.drop(entry)
                return None
            self.stats.disk_loads += 1
            if len(state) <= self.ram_bytes:
                entry.state = state
        self.touch(entry)
        self._trim_ram()
        return state

    def touch(self, entry: Entry) -> None:
        """Mark an entry as the most recently used."""
        with self._lock:
            if entry.key in self.entries:
                self.entries.move_to_end(entry.key)

    # -- saving -------------------------------------------------------------------------------
    def worth_saving(self, tokens: np.ndarray) -> bool:
        """Whether ``tokens`` adds at least ``min_new_tokens`` to what the store already holds."""
        if len(tokens) < self.min_new_tokens:
            return False
        _, covered = self.best(tokens)
        return len(tokens) - covered >= self.min_new_tokens

    def put(self, tokens: np.ndarray, state: bytes) -> Entry | None:
        if len(state) > self.ram_bytes:
            return None
        tokens = np.array(tokens, dtype=np.int32)
        entry = Entry(tokens_key(tokens), tokens, len(state), state)
        with self._lock:
            # Entries whose tokens are a prefix of the new ones are covered by it: drop them.
            covered = [e for e in self.entries.values()
                       if len(e.tokens) <= len(tokens)
                       and common_prefix(e.tokens, tokens) == len(e.tokens)]
            for old in covered:
                self.entries.pop(old.key, None)
            self.entries[entry.key] = entry
            self.stats.saves += 1
        for old in covered:
            self._unlink(old)
        if self.disk_dir is not None:
            self._write_later(entry, state)
        self._trim_ram()
        return entry

    def drop(self, entry: Entry) -> None:
        with self._lock:
            self.entries.pop(entry.key, None)
        self._unlink(entry)

    def ram_used(self) -> int:
        with self._lock:
            return sum(e.size for e in self.entries.values() if e.state is not None)

    def _trim_ram(self) -> None:
        with self._lock:
            used = sum(e.size for e in self.entries.values() if e.state is not None)
            for entry in list(self.entries.values()):
                if used <= self.ram_bytes:
                    break
                if entry.state is None:
                    continue
                used -= entry.size
                entry.state = None
                self.stats.evictions += 1
                if entry.path is None and not entry.writing:
                    del self.entries[entry.key]  # nowhere else to find it

    # -- disk ---------------------------------------------------------------------------------
    def _index_disk(self) -> None:
        """Learn the entries another process (or an earlier run) left on disk, oldest first."""
        if self._indexed or self.disk_dir is None:
            return
        self._indexed = True
        found: list[tuple[float, Entry]] = []
        with contextlib.suppress(OSError):
            for path in self.disk_dir.glob(f"*{SUFFIX}"):
                with contextlib.suppress(OSError, ValueError):
                    tokens, size = _read_header(path)
                    found.append((path.stat().st_mtime,
                                  Entry(path.stem, tokens, size, None, path)))
        with self._lock:
            known = dict(self.entries)
            self.entries.clear()
            for _, entry in sorted(found, key=lambda f: f[0]):
                self.entries[entry.key] = entry
            self.entries.update(known)  # this process's own entries are the newest

    def _write_later(self, entry: Entry, state: bytes) -> None:
        entry.writing = True
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devloop-kv")
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._write, entry, state))

    def _write(self, entry: Entry, state: bytes) -> None:
        assert self.disk_dir is not None
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        path = self.disk_dir / f"{entry.key}{SUFFIX}"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(MAGIC)
                fh.write(np.int64(len(entry.tokens)).tobytes())
                fh.write(entry.tokens.astype(np.int32).tobytes())
                fh.write(state)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._lock:
                entry.writing = False
                if entry.state is None:
                    self.entries.pop(entry.key, None)
            return
        with self._lock:
            entry.writing = False
            if entry.key in self.entries:
                entry.path = path
            else:  # dropped (covered by a newer entry) while being written
                with contextlib.suppress(OSError):
                    path.unlink()
        self._trim_disk()

    def _trim_disk(self) -> None:
        assert self.disk_dir is not None
        files: list[tuple[float, int, Path]] = []
        with contextlib.suppress(OSError):
            for path in self.disk_dir.glob(f"*{SUFFIX}"):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    files.append((st.st_mtime, st.st_size, path))
        total = sum(f[1] for f in files)
        for _, size, path in sorted(files):
            if total <= self.disk_bytes:
                break
            total -= size
            with contextlib.suppress(OSError):
                path.unlink()
            with self._lock:
                entry = self.entries.get(path.stem)
                if entry is not None:
                    entry.path = None
                    if entry.state is None:
                        del self.entries[entry.key]

    def _unlink(self, entry: Entry) -> None:
        if entry.path is not None:
            with contextlib.suppress(OSError):
                entry.path.unlink()
            entry.path = None

    def flush(self) -> None:
        """Wait for pending disk writes (before the process exits)."""
        for fut in list(self._pending):
            with contextlib.suppress(Exception):
                fut.result()
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


def _header_len(n_tokens: int) -> int:
    return len(MAGIC) + 8 + 4 * n_tokens


def _read_header(path: Path) -> tuple[np.ndarray, int]:
    with path.open("rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a devloop KV file")
        n = int(np.frombuffer(fh.read(8), dtype=np.int64)[0])
        tokens = np.frombuffer(fh.read(4 * n), dtype=np.int32).copy()
        if len(tokens) != n:
            raise ValueError("truncated")
    return tokens, path.stat().st_size - _header_len(n)


def live_tokens(llm: Any) -> np.ndarray:
    """The tokens whose KV the context holds now."""
    return np.asarray(llm.input_ids[: llm.n_tokens], dtype=np.int32)


def reused_tokens(llm: Any, tokens: list[int]) -> int:
    """The prompt tokens ``Llama.generate`` will not evaluate again: the prefix shared with
    the context, less the last prompt token (re-evaluated for fresh logits) unless the whole
    prompt is the live context with its logits at hand."""
    n = common_prefix(live_tokens(llm), np.asarray(tokens, dtype=np.int32))
    if n == len(tokens) == llm.n_tokens and not llm._requires_eval:
        return n
    return max(min(n, len(tokens) - 1), 0)


class KVPrefixCache:
    """Restores and saves a ``llama_cpp.Llama``'s sequence 0 through a PrefixStore.

    Call ``restore`` before a generation (it returns how many prompt tokens will be reused)
    and ``save`` after it; both on the model's thread.
    """

    # Restoring costs a copy of the state (tens of ms); only worth it for a real gain.
    MIN_GAIN = 16

    def __init__(self, store: PrefixStore) -> None:
        self.store = store

    def restore(self, llm: Any, tokens: list[int]) -> int:
        """Make the context hold the longest known prefix of ``tokens``; return the prompt
        tokens llama-cpp-python will reuse (see ``reused_tokens``)."""
        prompt = np.asarray(tokens, dtype=np.int32)
        live = common_prefix(live_tokens(llm), prompt)
        entry, n = self.store.best(prompt)
        if entry is not None and n >= live + self.MIN_GAIN:
            if self._load(llm, entry):
                self.store.stats.hits += 1
            else:
                self.store.stats.misses += 1
        else:
            if entry is not None and n >= self.MIN_GAIN:
                self.store.touch(entry)  # served by the live context: still in use
            if live < self.MIN_GAIN:
                self.store.stats.misses += 1
        reused = reused_tokens(llm, tokens)
        self.store.stats.reused_tokens += reused
        return reused

    def _load(self, llm: Any, entry: Entry) -> bool:
        import llama_cpp

        state = self.store.state_of(entry)
        if state is None:
            return False
        llm._ctx.kv_cache_clear()
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        ok = llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(state), 0)
        if not ok:  # a stale or foreign state: forget it, start clean
            llm._ctx.kv_cache_clear()
            llm.n_tokens = 0
            llm._requires_eval = True
            self.store.drop(entry)
            return False
        n = len(entry.tokens)
        llm.input_ids[:n] = entry.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # logits are not part of the state: decode before sampling
        return True

    def save(self, llm: Any) -> None:
        """Keep the context's current state when it adds enough to what is stored."""
        import llama_cpp

        tokens = live_tokens(llm).copy()
        if not self.store.worth_saving(tokens):
            return
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        if size <= 0 or size > self.store.ram_bytes:
            return
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if written <= 0:
            return
        self.store.put(tokens, bytes(memoryview(buf)[:written]))


def make_prefix_cache(model_path: Path, n_ctx: int, ram_mb: int, disk_mb: int,
                      home: Path | None) -> KVPrefixCache | None:
    """The cache for one model file, or None when it is turned off (``ram_mb`` 0)."""
    if ram_mb <= 0:
        return None
    from importlib.metadata import version

    disk_dir = None
    if home is not None and disk_mb > 0:
        disk_dir = home / "kv-prefix" / model_id(model_path, n_ctx, version("llama-cpp-python"))
    return KVPrefixCache(PrefixStore(ram_mb * MB, disk_dir, disk_mb * MB))
