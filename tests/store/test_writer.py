"""The one writer: loop-turn group commits, the thread when the write slot is taken,
checkpoints off the loop, and no job lost when another fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from devloop.store.writer import CHECKPOINT_ROWS, LOOP_GROUP_MAX, DbWriter


def _table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, who TEXT)")


def _insert(n: int):  # type: ignore[no-untyped-def]
    def job(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (n, who) VALUES (?, ?)", (n, threading.current_thread().name))
        return threading.current_thread().name
    return job


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT n, who FROM t ORDER BY n").fetchall()


@pytest.fixture()
def writer(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = DbWriter(tmp_path / "d.db")
    _table(w.path)
    yield w
    w.close()


def test_a_small_loop_turn_commits_on_the_loop_thread(writer: DbWriter) -> None:
    async def main() -> list[str]:
        return await asyncio.gather(*(writer.run(_insert(i)) for i in range(LOOP_GROUP_MAX)))

    committers = asyncio.run(main())
    assert set(committers) == {threading.main_thread().name}  # no hand-off to the thread
    assert [n for n, _ in _rows(writer.path)] == list(range(LOOP_GROUP_MAX))


def test_a_large_loop_turn_goes_to_the_thread_as_one_transaction(writer: DbWriter) -> None:
    seen: list[tuple[int, int]] = []

    def count(conn: sqlite3.Connection) -> None:
        """Runs last: its own transaction has every row; another reader sees none yet."""
        with sqlite3.connect(writer.path) as reader:
            outside = reader.execute("SELECT count(*) FROM t").fetchone()[0]
        seen.append((conn.execute("SELECT count(*) FROM t").fetchone()[0], outside))

    async def main() -> list[str]:
        jobs = [writer.run(_insert(i)) for i in range(LOOP_GROUP_MAX + 1)]
        return await asyncio.gather(*jobs, writer.run(count))

    *committers, _ = asyncio.run(main())
    assert set(committers) == {"devloop-db-writer"}
    assert seen == [(LOOP_GROUP_MAX + 1, 0)]  # one transaction: nothing committed before
    assert [n for n, _ in _rows(writer.path)] == list(range(LOOP_GROUP_MAX + 1))


def test_while_a_stream_is_open_commits_go_beside_the_loop(writer: DbWriter) -> None:
    writer.stream_opened()
    assert asyncio.run(writer.run(_insert(1))) == "devloop-db-writer"
    writer.stream_closed()
    assert asyncio.run(writer.run(_insert(2))) == threading.main_thread().name
    assert [n for n, _ in _rows(writer.path)] == [1, 2]


def test_a_failing_job_loses_no_other_job_of_its_batch(writer: DbWriter) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (n, who) VALUES (1000, 'x')")
        raise ValueError("job failed")

    async def main() -> list[object]:
        jobs = [writer.run(_insert(1)), writer.run(boom), writer.run(_insert(2))]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], ValueError)
    assert [n for n, _ in _rows(writer.path)] == [1, 2]  # boom's own insert rolled back


def test_another_process_writing_never_blocks_the_loop(writer: DbWriter) -> None:
    """A second connection holds SQLite's write lock: the loop hands the job to the writer
    thread (which waits for the lock) and keeps serving other work meanwhile."""
    other = sqlite3.connect(writer.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def main() -> str:
        nonlocal ticks
        job = asyncio.ensure_future(writer.run(_insert(7)))
        for _ in range(20):  # the loop keeps turning while the job waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert not job.done()
        other.execute("COMMIT")
        return await asyncio.wait_for(job, 30)

    try:
        committer = asyncio.run(main())
    finally:
        other.close()
    assert ticks == 20
    assert committer == "devloop-db-writer"
    assert _rows(writer.path) == [(7, "devloop-db-writer")]


def test_submit_from_another_thread_commits_on_the_writer_thread(writer: DbWriter) -> None:
    assert writer.submit(_insert(3)).result(timeout=10) == "devloop-db-writer"
    assert _rows(writer.path) == [(3, "devloop-db-writer")]


def test_the_wal_is_checkpointed_by_the_thread(writer: DbWriter) -> None:
    """The loop's connection never checkpoints (that fsync would stall the loop); the
    thread does after about CHECKPOINT_ROWS rows, so the WAL is reused instead of growing:
    2,000 one-row commits would leave at least 8 MB of WAL unchecked."""
    wal = Path(f"{writer.path}-wal")

    async def main() -> None:
        for i in range(CHECKPOINT_ROWS * 8):
            await writer.run(_insert(i))
            if i % CHECKPOINT_ROWS == CHECKPOINT_ROWS - 1:  # one is due: let the thread run it
                done = i // CHECKPOINT_ROWS + 1
                for _ in range(500):
                    if writer.checkpoints >= done:
                        break
                    await asyncio.sleep(0.01)
                assert writer.checkpoints >= done

    asyncio.run(main())
    assert wal.stat().st_size < 4 * 1024 * 1024
    assert len(_rows(writer.path)) == CHECKPOINT_ROWS * 8


def test_a_new_loop_takes_over_once_the_first_has_closed(writer: DbWriter) -> None:
    assert asyncio.run(writer.run(_insert(1))) == threading.main_thread().name
    assert asyncio.run(writer.run(_insert(2))) == threading.main_thread().name
    assert [n for n, _ in _rows(writer.path)] == [1, 2]


def test_jobs_of_a_second_running_loop_go_through_the_thread(writer: DbWriter) -> None:
    seen: list[str] = []

    def other_loop() -> None:
        seen.append(asyncio.run(writer.run(_insert(2))))

    async def main() -> None:
        await writer.run(_insert(1))  # this loop owns the loop path while it runs
        thread = threading.Thread(target=other_loop)
        thread.start()
        await asyncio.to_thread(thread.join, 30)

    asyncio.run(main())
    assert seen == ["devloop-db-writer"]
    assert [n for n, _ in _rows(writer.path)] == [1, 2]


async def test_loop_reader_is_the_loops_connection_only_on_that_loop(writer: DbWriter) -> None:
    """Reads on the loop's own connection see every committed row; off the loop (another
    thread, before any write) there is none and the caller uses its own reader."""
    assert writer.loop_reader() is None  # no loop has written yet
    await writer.run(_insert(1))
    conn = writer.loop_reader()
    assert conn is not None
    assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
    off_loop: list[object] = []
    t = threading.Thread(target=lambda: off_loop.append(writer.loop_reader()))
    t.start()
    t.join()
    assert off_loop == [None]
    writer.submit(_insert(2)).result()  # committed by the thread, seen by the loop's reader
    assert conn.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
