"""The one writer: a thread that owns the write connection and commits in groups.

Every write goes through here so the event loop never waits on SQLite, and no two
writers ever contend for the lock ("database is locked" cannot happen in-process).
Rows queued while a commit runs are committed together in the next transaction, so
throughput grows with load while each caller still awaits its own durable commit.
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


class DbWriter:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        open_db(self.path).close()  # apply migrations before the thread starts
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="devloop-db-writer", daemon=True)
        self._thread.start()

    # -- public API -------------------------------------------------------------------
    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn(conn)`` inside a write transaction on the writer thread."""
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Await ``fn(conn)``'s commit. The thread completes an asyncio future directly:
        a third less CPU and wall time per call than wrapping a concurrent Future."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, _LoopWaiter(loop, fut)))
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
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    # -- the thread ---------------------------------------------------------------------
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
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[tuple[Callable[..., Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        # A job alone needs no savepoint (two statements fewer): its failure rolls back all.
        alone = len(batch) == 1
        conn.execute("BEGIN IMMEDIATE")
        for fn, fut in batch:
            if not alone:
                conn.execute("SAVEPOINT job")
            try:
                value = fn(conn)
            except BaseException as exc:  # one bad job must not lose the others
                if not alone:
                    conn.execute("ROLLBACK TO job")
                elif conn.in_transaction:
                    conn.execute("ROLLBACK")
                results.append((fut, False, exc))
            else:
                results.append((fut, True, value))
            if not alone:
                conn.execute("RELEASE job")
        if conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                results = [(fut, False, exc) for fut, _, _ in results]
        for fut, ok, value in results:
            if fut.set_running_or_notify_cancel():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)


class _LoopWaiter:
    """The part of concurrent.futures.Future that ``_commit`` uses, for an asyncio future."""

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
