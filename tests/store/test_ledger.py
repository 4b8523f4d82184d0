"""The ledger's report and `devloop spend`: totals equal the rows, unknown is never $0."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devloop.money import format_usd
from devloop.store.calls import CallRecord, saved
from devloop.store.db import open_db
from devloop.store.spend import GROUPINGS, spend_report
from devloop.store.writer import DbWriter
from tests.helpers import ROOT, base_env

DAY = 86400.0


def record(i: int, tier: str, cost: float | None, cf: float | None, **kw: Any) -> CallRecord:
    return CallRecord(
        request_id=f"r{i}", endpoint="chat", tier=tier, backend=tier, model=kw.pop("model", tier),
        route_reason="test", prompt_tokens=10 * i, completion_tokens=i, cost_usd=cost,
        counterfactual_usd=cf, saved_usd=saved(cost, cf), **kw)


def write(path: Path, records: list[CallRecord]) -> None:
    writer = DbWriter(path)
    try:
        for fut in [writer.insert("calls", r.row()) for r in records]:
            fut.result(10)
    finally:
        writer.close()


def sample(now: float) -> list[CallRecord]:
    return [
        record(1, "local", 0.0, 0.003, feature="commit", user="ana", ts=now - 10),
        record(2, "embedded", 0.0, 0.002, feature="commit", user="ana", ts=now - 20),
        record(3, "shared", 0.0, 0.004, feature="review", user="bo", ts=now - 3 * DAY),
        record(4, "frontier", 0.01, 0.01, model="openai/gpt-4o", feature="eval-x", ts=now - 30),
        record(5, "local", 0.0, 0.001, cache="hit", feature="commit", ts=now - 40),
        record(6, "frontier", 0.02, 0.03, model="anthropic/claude", ts=now - 10 * DAY),
    ]


def column_sum(path: Path, column: str, where: str = "") -> float:
    with sqlite3.connect(path) as conn:
        return float(conn.execute(f"SELECT total({column}) FROM calls {where}").fetchone()[0])


def test_totals_equal_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    write(path, sample(time.time()))
    db = open_db(path)
    report = spend_report(db, "all", "tier")
    t = report["totals"]
    assert t["calls"] == 6
    for key in ("prompt_tokens", "completion_tokens", "cost_usd", "counterfactual_usd",
                "saved_usd"):
        assert t[key] == pytest.approx(column_sum(path, key.replace("_usd", "_usd")), abs=1e-9)
        assert sum(g[key] for g in report["groups"]) == pytest.approx(t[key], abs=1e-9)
    assert t["cache_hit_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert t["local_share"] == pytest.approx(4 / 6, abs=1e-4)
    assert {g["key"] for g in report["groups"]} == {"local", "embedded", "shared", "frontier"}
    for by in GROUPINGS:  # every grouping partitions the same totals
        groups = spend_report(db, "all", by)["groups"]
        assert sum(g["calls"] for g in groups) == 6, by
        assert sum(g["saved_usd"] for g in groups) == pytest.approx(t["saved_usd"]), by
    db.close()


def test_since_filters_by_time(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    write(path, sample(time.time()))
    db = open_db(path)
    assert spend_report(db, "1d")["totals"]["calls"] == 4
    assert spend_report(db, "7d")["totals"]["calls"] == 5
    assert spend_report(db, "30d")["totals"]["calls"] == 6
    assert spend_report(db, "12h")["totals"]["calls"] == 4
    with pytest.raises(ValueError, match="--since"):
        spend_report(db, "yesterday")
    db.close()


def test_unknown_price_is_null_not_zero(tmp_path: Path) -> None:
    path = tmp_path / "devloop.db"
    now = time.time()
    write(path, [record(1, "local", 0.0, 0.002, ts=now),
                 record(2, "frontier", None, 0.004, model="openai/mystery", ts=now)])
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT cost_usd, saved_usd FROM calls WHERE request_id='r2'")
        assert row.fetchone() == (None, None)
    db = open_db(path)
    report = spend_report(db, "all", "model")
    db.close()
    assert report["totals"]["cost_usd"] is None and report["totals"]["saved_usd"] is None
    assert report["totals"]["counterfactual_usd"] == pytest.approx(0.006)
    assert report["totals"]["unpriced_calls"] == 1
    groups = {g["key"]: g for g in report["groups"]}
    assert groups["openai/mystery"]["cost_usd"] is None
    assert groups["local"]["cost_usd"] == 0.0 and groups["local"]["saved_usd"] == 0.002
    assert format_usd(None) == "unknown"


def spend_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devloop", "spend", *args], cwd=ROOT,
                          env=base_env(home), capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_spend_cli_formats(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    now = time.time()
    write(home / "devloop.db", [*sample(now),
                                record(7, "frontier", None, 0.001, model="openai/mystery", ts=now)])
    out = spend_cli(home, "--json", "--by", "tier")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["totals"]) >= {"calls", "prompt_tokens", "completion_tokens", "cost_usd",
                                     "counterfactual_usd", "saved_usd", "cache_hit_rate",
                                     "local_share"}
    assert report["totals"]["calls"] == 7 and report["totals"]["cost_usd"] is None
    frontier = next(g for g in report["groups"] if g["key"] == "frontier")
    assert frontier["cost_usd"] is None

    out = spend_cli(home, "--csv", "--by", "feature", "--since", "7d")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows[-1]["key"] == "TOTAL" and rows[-1]["calls"] == "6"
    assert {r["key"] for r in rows} >= {"commit", "review", "eval-x", "(none)"}

    text = spend_cli(home, "--by", "model").stdout
    assert "unknown" in text and "openai/mystery" in text and "$0.0000" in text
    assert "no known price" in text

    bad = spend_cli(home, "--since", "forever")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "--since" in bad.stderr


def test_many_concurrent_writers_commit_every_row(tmp_path: Path) -> None:
    """200 calls committing at once through the one writer, while a reader polls."""
    path = tmp_path / "devloop.db"
    writer = DbWriter(path)

    async def main() -> None:
        reader = open_db(path)
        stop = False

        async def poll() -> int:
            n = 0
            while not stop:
                spend_report(reader, "all", "tier")
                n += 1
                await asyncio.sleep(0.001)
            return n

        poller = asyncio.create_task(poll())
        jobs = [asyncio.wrap_future(writer.insert("calls", record(i, "local", 0.0, 0.001).row()))
                for i in range(200)]
        await asyncio.gather(*jobs)
        stop = True
        assert await poller > 0
        reader.close()

    try:
        asyncio.run(main())
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(DISTINCT request_id) FROM calls").fetchone()[0] == 200
