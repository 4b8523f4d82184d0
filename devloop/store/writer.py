"""The one writer: owns the write connections and commits in groups.

Every write goes through here, so no two writers in this process contend for SQLite's
lock ("database is locked" cannot happen in-process). ``run`` (from the event loop)
collects the jobs of one turn of the loop and commits them together in one transaction:

- a group (one request at a time, or the dozens in flight under load) commits on the
  loop itself. A WAL commit with ``synchronous=NORMAL`` is a write without fsync (about
  40 µs for a ledger row), cheaper than waking a thread and then the loop again;
- while a stream is open (``stream_opened``), a burst larger than ``LOOP_GROUP_MAX``, or
  a group that finds the write slot taken (the thread is committing, or another process
  holds SQLite's lock: the loop never waits for it), goes to the writer thread as one
  hand-off and is settled back on the loop with one wake-up. There the commit runs beside
  the loop (sqlite releases the GIL).

``submit`` (from any thread) always uses the thread. One lock is the write slot: whoever
holds it writes, on its own connection. The thread also runs the WAL checkpoints
(``wal_autocheckpoint`` is off on the loop's connection), so the fsync a checkpoint needs
never blocks the loop. Figures: docs/benchmarks.md ("The hot path again", "third pass").
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
Job = Callable[[sqlite3.Connection], Any]
_STOP = object()
_CHECKPOINT = object()
# Rows written between checkpoints: about SQLite's default of 1,000 WAL pages, at a
# ledger row plus its index entries (four pages) each.
CHECKPOINT_ROWS = 250
# The largest group committed on the loop; a larger burst goes to the thread, beside the
# loop. Measured (bench_gateway.py --baseline): groups of up to 3 on the loop and larger on
# the thread served 10-13% fewer cache hits at 10 in flight than the loop committing all.
LOOP_GROUP_MAX = 64


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
        self._pending: list[tuple[Job, Any]] = []
        self._rows_since_checkpoint = 0
        self.checkpoints = 0  # WAL checkpoints the thread has run
        self._open_streams = 0
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
            self._queue.put(_Group(loop, [(fn, _Result(fut))]))
            return await fut
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((fn, _Result(fut)))
        return await fut

    def loop_reader(self) -> sqlite3.Connection | None:
        """The loop's own connection, for a short read on the writer's loop (None anywhere
        else). Its page cache stays warm: SQLite drops a connection's whole cache whenever
        another connection has committed, and the loop's connection commits most rows
        itself (a cache lookup: 31 µs on it, 45-53 µs on a separate reader)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._loop_conn if loop is self._loop and not self._closed else None

    def stream_opened(self) -> None:
        """A live stream was admitted; it stays open until its own row is committed
        (``stream_closed``). While any is open, loop jobs are committed beside the loop: a
        commit on it would hold back the first token or the next piece of every open stream
        (measured: time to first token at 10 streams in flight 1.3-1.5x the thread's)."""
        self._open_streams += 1

    def stream_closed(self) -> None:
        self._open_streams = max(0, self._open_streams - 1)

    @property
    def open_streams(self) -> int:
        """Live streams open now: while any is, loop jobs are committed beside the loop."""
        return self._open_streams

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
        group, self._pending = self._pending, []
        if not group:
            return
        if (self._open_streams or len(group) > LOOP_GROUP_MAX or self._closed
                or not self._slot.acquire(blocking=False)):
            self._hand_over(group)
            return
        try:
            due = self._commit_counted(self._loop_conn, group)
        except sqlite3.OperationalError:  # BEGIN found another process writing
            if self._loop_conn.in_transaction:
                self._loop_conn.execute("ROLLBACK")
            self._hand_over(group)
            return
        finally:
            self._slot.release()
        for _, result in group:
            result.settle()
        if due:
            self._queue.put(_CHECKPOINT)

    def _hand_over(self, group: list[tuple[Job, Any]]) -> None:
        assert self._loop is not None
        self._queue.put(_Group(self._loop, group))

    def _commit_counted(self, conn: sqlite3.Connection, jobs: list[tuple[Job, Any]]) -> bool:
        """Commit ``jobs`` (the caller holds the slot); True when a checkpoint is due."""
        before = conn.total_changes
        _commit(conn, jobs)
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
                items = [self._queue.get()]
                while len(items) < 500:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                jobs: list[tuple[Job, Any]] = []
                groups: list[_Group] = []
                for item in items:
                    if isinstance(item, _Group):
                        groups.append(item)
                        jobs.extend(item.jobs)
                    elif isinstance(item, tuple):
                        jobs.append(item)
                if jobs:
                    with self._slot:
                        try:
                            self._commit_counted(conn, jobs)
                        except sqlite3.Error as exc:  # BEGIN waited out the busy timeout
                            _fail(jobs, exc)
                for group in groups:  # one wake-up of each loop for its whole group
                    with contextlib.suppress(RuntimeError):  # that loop has closed
                        group.loop.call_soon_threadsafe(group.settle)
                if _CHECKPOINT in items:
                    # PASSIVE: copies what no reader still needs and waits on no one; the
                    # loop keeps committing meanwhile (a checkpoint is not a write).
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.checkpoints += 1
                if _STOP in items:
                    return
        finally:
            conn.close()


def _commit(conn: sqlite3.Connection, jobs: list[tuple[Job, Any]]) -> None:
    """Every job in one transaction. When one fails, the transaction is rolled back and each
    job runs again in its own, so a bad job loses no other: the common path needs no
    per-job savepoints (three statements a job fewer). Raises only when BEGIN fails
    (another process holds the lock past the busy timeout), with no job run."""
    conn.execute("BEGIN IMMEDIATE")
    results: list[tuple[bool, Any]]
    try:
        values = [fn(conn) for fn, _ in jobs]
        conn.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001 - given to the job's waiter below
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        results = [(False, exc)] if len(jobs) == 1 else [_alone(conn, fn) for fn, _ in jobs]
    else:
        results = [(True, value) for value in values]
    for (_, waiter), (ok, value) in zip(jobs, results, strict=True):
        if waiter.set_running_or_notify_cancel():
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)


def _alone(conn: sqlite3.Connection, fn: Job) -> tuple[bool, Any]:
    try:
        conn.execute("BEGIN IMMEDIATE")
        value = fn(conn)
        conn.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001 - this job's own failure
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return False, exc
    return True, value


def _fail(jobs: list[tuple[Job, Any]], exc: BaseException) -> None:
    for _, waiter in jobs:
        if waiter.set_running_or_notify_cancel():
            waiter.set_exception(exc)


class _Result:
    """A loop job's outcome, kept by whichever thread committed it and given to its
    asyncio future on the loop (``settle``): futures are only touched on their loop."""

    __slots__ = ("fut", "ok", "value")

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self.fut = fut
        self.ok: bool | None = None
        self.value: Any = None

    def set_running_or_notify_cancel(self) -> bool:
        return True  # a cancelled waiter's job still commits (the row is still owed)

    def set_result(self, value: Any) -> None:
        self.ok, self.value = True, value

    def set_exception(self, exc: BaseException) -> None:
        self.ok, self.value = False, exc

    def settle(self) -> None:
        if self.fut.cancelled() or self.ok is None:
            return
        if self.ok:
            self.fut.set_result(self.value)
        else:
            self.fut.set_exception(self.value)


class _Group:
    """Loop jobs handed to the thread together, settled with one wake-up of their loop."""

    __slots__ = ("jobs", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, jobs: list[tuple[Job, _Result]]
                 ) -> None:
        self.loop, self.jobs = loop, jobs

    def settle(self) -> None:
        for _, result in self.jobs:
            result.settle()
