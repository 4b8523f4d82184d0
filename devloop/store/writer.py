"""The one writer: a thread that owns the write connection and commits in groups.

Every write goes through here so the event loop never waits on SQLite, and no two
writers ever contend for the lock ("database is locked" cannot happen in-process).
Rows queued while a commit runs are committed together in the next transaction, so
throughput grows with load while each caller still awaits its own durable commit.
"""

from __future__ import annotations

import asyncio
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
        return await asyncio.wrap_future(self.submit(fn))

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
        conn.execute("BEGIN IMMEDIATE")
        for fn, fut in batch:
            conn.execute("SAVEPOINT job")
            try:
                value = fn(conn)
            except BaseException as exc:  # one bad job must not lose the others
                conn.execute("ROLLBACK TO job")
                results.append((fut, False, exc))
            else:
                results.append((fut, True, value))
            conn.execute("RELEASE job")
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
