"""PrefixStore: longest-prefix lookup, the LRU bound in RAM and on disk, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from devloop.backends.prefix_cache import PrefixStore, common_prefix
from devloop.backends.speculative import chat_kind, eligible, parse_kinds
from devloop.config import Settings


def toks(*parts: range | list[int]) -> np.ndarray:
    out: list[int] = []
    for p in parts:
        out.extend(p)
    return np.array(out, dtype=np.int32)


A = toks(range(0, 300))
B = toks(range(1000, 1300))


def test_common_prefix() -> None:
    assert common_prefix(A, A) == 300
    assert common_prefix(A, toks(range(0, 120), [7, 7])) == 120
    assert common_prefix(A, B) == 0
    assert common_prefix(A[:0], A) == 0


def test_best_is_the_longest_shared_prefix() -> None:
    store = PrefixStore(ram_bytes=10_000, min_new_tokens=8)
    store.put(A, b"a" * 100)
    store.put(toks(range(0, 100), range(5000, 5200)), b"c" * 100)
    store.put(B, b"b" * 100)
    entry, n = store.best(toks(range(0, 250), [1, 2, 3]))
    assert entry is not None and n == 250 and store.state_of(entry) == b"a" * 100
    entry, n = store.best(toks(range(1000, 1100)))
    assert entry is not None and n == 100 and store.state_of(entry) == b"b" * 100
    assert store.best(toks([9, 9, 9])) == (None, 0)


def test_ram_bound_evicts_least_recently_used() -> None:
    store = PrefixStore(ram_bytes=250, min_new_tokens=8)
    c = toks(range(2000, 2300))
    store.put(A, b"a" * 100)
    store.put(B, b"b" * 100)
    entry, _ = store.best(A)
    assert entry is not None
    store.state_of(entry)  # A is now the most recently used
    store.put(c, b"c" * 100)  # over 250 bytes: B goes, not A
    assert store.ram_used() <= 250
    assert store.best(B) == (None, 0)
    assert store.best(A)[1] == 300 and store.best(c)[1] == 300
    assert store.stats.evictions == 1


def test_a_state_larger_than_the_bound_is_not_kept() -> None:
    store = PrefixStore(ram_bytes=50, min_new_tokens=8)
    assert store.put(A, b"a" * 100) is None
    assert store.ram_used() == 0 and not store.entries


def test_an_entry_covered_by_a_longer_one_is_dropped() -> None:
    store = PrefixStore(ram_bytes=10_000, min_new_tokens=8)
    store.put(A[:200], b"short")
    store.put(A, b"long")
    assert len(store.entries) == 1
    entry, n = store.best(A[:150])
    assert entry is not None and n == 150 and store.state_of(entry) == b"long"


def test_worth_saving_needs_enough_new_tokens() -> None:
    store = PrefixStore(ram_bytes=10_000, min_new_tokens=64)
    assert not store.worth_saving(A[:40])  # too short to be worth a state
    assert store.worth_saving(A)
    store.put(A, b"a")
    assert not store.worth_saving(toks(range(0, 300), range(9000, 9030)))  # 30 new tokens
    assert store.worth_saving(toks(range(0, 300), range(9000, 9100)))


def test_disk_entries_survive_a_new_store(tmp_path: Path) -> None:
    first = PrefixStore(ram_bytes=10_000, disk_dir=tmp_path, disk_bytes=1_000_000,
                        min_new_tokens=8)
    first.put(A, b"state-a" * 10)
    first.close()  # waits for the write
    second = PrefixStore(ram_bytes=10_000, disk_dir=tmp_path, disk_bytes=1_000_000,
                         min_new_tokens=8)
    entry, n = second.best(toks(range(0, 280), [4, 4]))
    assert entry is not None and n == 280
    assert second.state_of(entry) == b"state-a" * 10
    assert second.stats.disk_loads == 1


def test_ram_eviction_keeps_entries_that_are_on_disk(tmp_path: Path) -> None:
    store = PrefixStore(ram_bytes=150, disk_dir=tmp_path, disk_bytes=1_000_000,
                        min_new_tokens=8)
    store.put(A, b"a" * 100)
    store.flush()
    store.put(B, b"b" * 100)  # A leaves RAM but stays findable on disk
    store.flush()
    entry, n = store.best(A)
    assert entry is not None and n == 300 and entry.state is None
    assert store.state_of(entry) == b"a" * 100
    store.close()


def test_disk_bound_is_respected(tmp_path: Path) -> None:
    store = PrefixStore(ram_bytes=10_000, disk_dir=tmp_path, disk_bytes=3_000,
                        min_new_tokens=8)
    for i in range(5):
        store.put(toks(range(i * 1000, i * 1000 + 300)), bytes([i]) * 1000)
        store.flush()
    store.close()
    files = list(tmp_path.glob("*.kvp"))
    assert sum(f.stat().st_size for f in files) <= 3_000
    assert len(files) == 1  # each file is 1,000 bytes of state plus its 1,214-byte header


def test_a_foreign_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "junk.kvp").write_bytes(b"not a state")
    store = PrefixStore(ram_bytes=10_000, disk_dir=tmp_path, disk_bytes=1_000_000)
    assert store.best(A) == (None, 0)


def test_speculative_kinds_are_validated() -> None:
    with pytest.raises(ValidationError, match="embedded_speculative"):
        Settings(embedded_speculative="fim,rewrite")
    assert parse_kinds(Settings(embedded_speculative="fim, edit").embedded_speculative) == \
        {"fim", "edit"}
    assert parse_kinds("") == frozenset()


def test_request_kinds_and_eligibility() -> None:
    assert chat_kind("Rename x to y:\n```python\nx = 1\n```") == "edit"
    assert chat_kind("Tell me a story about a robot.") == "chat"
    assert eligible({"temperature": 0})
    assert not eligible({"temperature": 0.7})
    assert not eligible({})  # the embedded tier's default temperature is 0.8
    assert not eligible({"temperature": 0, "grammar": object()})
