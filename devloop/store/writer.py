"""The one writer: owns the write connection and commits in groups.

Every write goes through here, so no two writers in this process contend for SQLite's
lock ("database is locked" cannot happen in-process). Two paths share one connection:

- ``run`` from the event loop: jobs queued during one turn of the loop are committed
  together at the start of the next (one transaction), on the loop itself. A WAL commit
  with ``synchronous=NORMAL`` is a write without fsync (tens of microseconds), cheaper than
  waking a thread and then the loop again (two cross-thread wake-ups, measured at
  0.1-0.2 ms a request on a 2-vCPU VM: docs/benchmarks.md).
- ``submit`` from any thread, and loop jobs that find the write slot taken (the thread
  is committing, or another process holds SQLite's lock: the loop never waits for it):
  the writer thread commits them, taking every job queued while its last commit ran.

One lock is the write slot: whoever holds it writes, on its own connection. The thread
also runs the WAL checkpoints (``wal_autocheckpoint`` is off on the loop's connection),
so the fsync a checkpoint needs never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from devloop.store.db import connect, open_db

T = TypeVar("T")
_STOP = object()
_CHECKPOINT = object()
# Rows written between checkpoints: about SQLite's default of 1,000 WAL pages, at a
# ledger row plus its three index entries (four pages) each.
CHECKPOINT_ROWS = 250


class DbWriter:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        open_db(self.path).close()  # apply migrations before the thread starts
        self._loop_conn = connect(self.path)
        self._loop_conn.execute("PRAGMA wal_autocheckpoint=0")  # the thread checkpoints
        self._loop_conn.execute("PRAGMA busy_timeout=0")  # busy: the thread waits instead
        self._slot = threading.Lock()  # the write slot: one committer at a time
        self._closed = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``_pending`` is for
        self._pending: list[tuple[Callable[..., Any], _LoopNow]] = []
        self._rows_since_checkpoint = 0
        self._thread = threading.Thread(target=self._run, name="devloop-db-writer", daemon=True)
        self._thread.start()

    # -- public API -------------------------------------------------------------------
    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn(conn)`` inside a write transaction on the writer thread."""
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Await ``fn(conn)``'s commit (grouped with the other jobs of this loop turn)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if loop is not self._loop and (self._loop is None or self._loop.is_closed()):
            if self._pending:  # left by a loop that closed first: still committed
                self._hand_over(self._pending)
                self._pending = []
            self._loop = loop  # the first loop, or the one after it
        if loop is not self._loop or self._closed:  # a second running loop: the thread
            self._queue.put((fn, _LoopWaiter(loop, fut)))
            return await fut
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((fn, _LoopNow(fut)))
        return await fut

    def insert(self, table: str, row: dict[str, Any]) -> Future[int]:
        cols = ", ".join(f"[{c}]" for c in row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO [{table}] ({cols}) VALUES ({marks})"
        values = tuple(row.values())

        def do(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, values).lastrowid or 0)

        return self.submit(do)

    def close(self) -> None:
        if self._pending:  # jobs of a loop turn that has not come: hand them to the thread
            self._hand_over(self._pending)
            self._pending = []
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
        self._loop_conn.close()

    # -- the loop's path ----------------------------------------------------------------
    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._closed or not self._slot.acquire(blocking=False):
            self._hand_over(batch)  # the thread is committing: it takes these next
            return
        try:
            due = self._commit(self._loop_conn, batch)
        except sqlite3.OperationalError:  # BEGIN found another process writing
            if self._loop_conn.in_transaction:
                self._loop_conn.execute("ROLLBACK")
            self._hand_over(batch)
            return
        finally:
            self._slot.release()
        if due:
            self._queue.put(_CHECKPOINT)

    def _hand_over(self, batch: list[tuple[Callable[..., Any], _LoopNow]]) -> None:
        loop = self._loop
        assert loop is not None
        for fn, waiter in batch:
            self._queue.put((fn, _LoopWaiter(loop, waiter.fut)))

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[Callable[..., Any], Any]]
                ) -> bool:
        """Commit ``batch`` (the caller holds the slot); True when a checkpoint is due."""
        before = conn.total_changes
        _commit(conn, batch)
        self._rows_since_checkpoint += conn.total_changes - before
        if self._rows_since_checkpoint < CHECKPOINT_ROWS:
            return False
        self._rows_since_checkpoint = 0
        return True

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < 500:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                jobs = [item for item in batch if item is not _CHECKPOINT]
                if jobs:
                    with self._slot:
                        try:
                            self._commit(conn, jobs)
                        except sqlite3.Error as exc:  # BEGIN waited out the busy timeout
                            _fail(jobs, exc)
                if len(jobs) < len(batch):
                    # PASSIVE: copies what no reader still needs and waits on no one; the
                    # loop keeps committing meanwhile (a checkpoint is not a write).
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if stop:
                    return
        finally:
            conn.close()


def _commit(conn: sqlite3.Connection, batch: list[tuple[Callable[..., Any], Any]]) -> None:
    """Every job in one transaction. When one fails, the transaction is rolled back and each
    job runs again in its own, so a bad job loses no other: the common path needs no
    per-job savepoints (three statements a job fewer). Raises only when BEGIN fails
    (another process holds the lock past the busy timeout), with no job run."""
    conn.execute("BEGIN IMMEDIATE")
    results: list[tuple[bool, Any]]
    try:
        values = [fn(conn) for fn, _ in batch]
        conn.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001 - settled on the job's future below
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        results = [(False, exc)] if len(batch) == 1 else [_alone(conn, fn) for fn, _ in batch]
    else:
        results = [(True, value) for value in values]
    for (_, fut), (ok, value) in zip(batch, results, strict=True):
        if fut.set_running_or_notify_cancel():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


def _alone(conn: sqlite3.Connection, fn: Callable[..., Any]) -> tuple[bool, Any]:
    try:
        conn.execute("BEGIN IMMEDIATE")
        value = fn(conn)
        conn.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001 - this job's own failure
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return False, exc
    return True, value


def _fail(batch: list[tuple[Callable[..., Any], Any]], exc: BaseException) -> None:
    for _, fut in batch:
        if fut.set_running_or_notify_cancel():
            fut.set_exception(exc)


class _LoopNow:
    """A job's asyncio future, settled directly: its commit ran on the loop's own thread."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self.fut = fut

    def set_running_or_notify_cancel(self) -> bool:
        return not self.fut.cancelled()

    def set_result(self, value: Any) -> None:
        self.fut.set_result(value)

    def set_exception(self, exc: BaseException) -> None:
        self.fut.set_exception(exc)


class _LoopWaiter:
    """A job's asyncio future, settled from the writer thread through the loop."""

    __slots__ = ("fut", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
        self.loop, self.fut = loop, fut

    def set_running_or_notify_cancel(self) -> bool:
        return not self.fut.cancelled()  # re-checked on the loop: a racy read is harmless

    def set_result(self, value: Any) -> None:
        self._call(_settle, self.fut, value, None)

    def set_exception(self, exc: BaseException) -> None:
        self._call(_settle, self.fut, None, exc)

    def _call(self, *args: Any) -> None:
        # RuntimeError: the loop closed while the job ran, so nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(*args)


def _settle(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
