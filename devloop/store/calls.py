"""The calls table's one writer: the ledger row (``CallRecord``) and its INSERT.

Everything that writes a ledger row builds a ``CallRecord`` and hands ``insert_call_job``
to the DB writer; other writes that belong to the same call (the cache row, the settled
budget reservation, the stored bodies) join the same transaction as extra jobs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, Literal

WriteJob = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class CallRecord:
    request_id: str
    endpoint: str
    tier: str | None
    backend: str | None
    model: str | None
    route_reason: str | None
    cache: Literal["hit", "miss", "bypass", "off"] = "miss"
    feature: str | None = None
    user: str | None = None
    key_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tokens_counted: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: int = 0
    status: int = 200
    error: str | None = None
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = None
    saved_usd: float | None = None
    production_model: str | None = None
    prompt_hash: str | None = None
    prefix_hash: str | None = None
    queue_position: int | None = None
    queue_wait_ms: float | None = None
    ts: float = 0.0
    # The ledger contract's columns for provider caching, agents, batches, cascades and
    # audits (migration m010). None where the call did not report or have the figure.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_ttl: Literal["5m", "1h"] | None = None
    reasoning_tokens: int | None = None
    input_cost_usd: float | None = None
    output_cost_usd: float | None = None
    session: str | None = None
    batch_id: str | None = None
    parent_request_id: str | None = None
    semantic_similarity: float | None = None
    audit_sampled: int = 0
    # who sent it ('client', or devloop's own: check, eval, judge, probe, ladder) and the
    # whole request's hash (identical requests: retries); migration m101
    origin: str | None = None
    request_hash: str | None = None

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data["ts"] = self.ts or time.time()
        return data


def saved(cost: float | None, counterfactual: float | None) -> float | None:
    """What a call saved against the production model; unknown when either price is."""
    if cost is None or counterfactual is None:
        return None
    return counterfactual - cost


# The INSERT, built once: CallRecord.row() (dataclasses.asdict) costs ~30 us a call.
CALL_COLUMNS = tuple(f.name for f in fields(CallRecord))
_TS = CALL_COLUMNS.index("ts")
_VALUES = attrgetter(*CALL_COLUMNS)  # the row's values in column order, in one C call
INSERT_CALL = (f"INSERT INTO calls ({', '.join(f'[{c}]' for c in CALL_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(CALL_COLUMNS))})")


def insert_call_job(rec: CallRecord, *also: WriteJob | None) -> WriteJob:
    """A writer job that inserts the row, then runs ``also`` in the same transaction."""
    values = list(_VALUES(rec))
    values[_TS] = rec.ts or time.time()
    extra = [job for job in also if job is not None]

    def job(conn: sqlite3.Connection) -> None:
        conn.execute(INSERT_CALL, values)
        for more in extra:
            more(conn)

    return job
