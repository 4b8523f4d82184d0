"""The fair queue and the key ring, in process: ordering, caps, revocation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devloop.config import Profile, RateLimit
from devloop.gateway.admission import Budgets
from devloop.server.fair_queue import FairQueue, QueueFull, Ticket
from devloop.server.team import apply_key_limits
from devloop.store.db import open_db
from devloop.store.keys import KeyRing, create_key, revoke_key


def admitted(tickets: list[Ticket]) -> list[str]:
    return [t.key for t in tickets if t.granted_at is not None]


async def test_slots_are_capped_and_a_burst_does_not_hold_back_other_keys() -> None:
    q = FairQueue(capacity=2, reserved=0)
    tickets = [q.enter("a") for _ in range(6)] + [q.enter("b") for _ in range(2)] + [q.enter("c")]
    assert admitted(tickets) == ["a", "a"] and q.queued() == 7
    order = [t for t in tickets if t.granted_at is not None]  # in the order they got a slot
    while q.in_use:
        q.release(next(t for t in order if not t.released))  # the oldest finishes first
        assert q.in_use <= 2
        order += [t for t in tickets if t.granted_at is not None and t not in order]
    grants = [t.key for t in order[2:]]
    assert sorted(grants) == ["a"] * 4 + ["b"] * 2 + ["c"]
    assert set(grants[:3]) == {"a", "b", "c"}  # b and c did not wait behind a's burst
    assert not q.waiting and not q.held


async def test_a_key_never_takes_the_reserved_slot_so_a_newcomer_starts_at_once() -> None:
    q = FairQueue(capacity=4, reserved=1)
    burst = [q.enter("a") for _ in range(50)]
    assert len(admitted(burst)) == 3 and q.in_use == 3  # one slot kept back from "a"
    newcomer = q.enter("b")
    assert newcomer.future is None and newcomer.position == 0  # admitted without waiting
    second = q.enter("c")
    assert second.future is not None  # the reserve is one slot, not one per key
    q.release(burst[0])
    assert second.granted_at is not None  # c holds none, a holds two: c goes first
    assert second.position == 1 and second.wait_ms >= 0


async def test_queue_position_counts_the_requests_admitted_ahead() -> None:
    q = FairQueue(capacity=1, reserved=0)
    first = q.enter("a")
    a1, a2, a3 = (q.enter("a") for _ in range(3))
    b = q.enter("b")
    for running in (first, a1, b, a2, a3):
        q.release(running)
    # Served a1, b, a2, a3: round robin, so b overtook a's later requests.
    assert (first.position, a1.position, b.position, a2.position, a3.position) == (0, 1, 2, 3, 4)
    assert all(t.future is not None and t.future.done() for t in (a1, a2, a3, b))


async def test_leaving_the_queue_frees_nothing_and_releasing_twice_is_harmless() -> None:
    q = FairQueue(capacity=1, reserved=0, max_queued_per_key=2)
    running = q.enter("a")
    w1, w2 = q.enter("a"), q.enter("a")
    with pytest.raises(QueueFull):
        q.enter("a")
    q.release(w1)  # a client that disconnected while queued
    assert w1.future is not None and w1.future.cancelled() and q.in_use == 1
    q.release(running)
    q.release(running)
    assert q.in_use == 1 and w2.granted_at is not None
    q.release(w2)
    assert q.in_use == 0 and not q.held and not q.waiting


async def test_waiters_wake_in_order() -> None:
    q = FairQueue(capacity=1, reserved=0)
    holder = q.enter("a")
    tickets = [q.enter(k) for k in ("a", "a", "a", "b")]
    woke: list[str] = []

    async def waiter(t: Ticket) -> None:
        assert t.future is not None
        await t.future
        woke.append(t.key)
        await asyncio.sleep(0.001)
        q.release(t)

    tasks = [asyncio.create_task(waiter(t)) for t in tickets]
    await asyncio.sleep(0)
    q.release(holder)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert woke == ["a", "b", "a", "a"]  # b's one request did not wait for a's whole burst


def test_key_ring_verifies_from_memory_and_sees_a_revoke(tmp_path: Path) -> None:
    db = open_db(tmp_path / "devloop.db")
    key = create_key(db, "alice", budget_usd=2.0, period="week", rpm=30, max_concurrent=3)
    ring = KeyRing(tmp_path / "devloop.db", refresh_s=0.2)
    assert ring.refresh()
    assert ring.verify(key) == ("alice", "")
    assert ring.verify(key + "x") == (None, "invalid")
    assert ring.verify("sk-not-ours") == (None, "invalid")
    revoke_key(db, "alice")
    assert ring.verify(key) == ("alice", "")  # until the next refresh
    assert not ring.refresh()  # too soon: no query
    time.sleep(0.25)
    assert ring.refresh()
    assert ring.verify(key) == (None, "revoked")
    fresh = create_key(db, "alice")  # a new key under the same name
    ring.refresh(force=True)
    # the revoked key keeps its history row (issue 12): it stays refused, and says why
    assert ring.verify(fresh) == ("alice", "") and ring.verify(key) == (None, "revoked")
    ring.close()
    db.close()


def test_key_limits_load_into_budgets_and_keep_the_profile_limits(tmp_path: Path) -> None:
    db = open_db(tmp_path / "devloop.db")
    create_key(db, "alice", budget_usd=2.0, period="week", rpm=30, max_concurrent=3)
    create_key(db, "bob")
    ring = KeyRing(tmp_path / "devloop.db", refresh_s=0)
    ring.refresh()
    profile = Profile(name="p", production_model="m", tiers={}, routes=[],
                      rate_limits=[RateLimit(scope="key:bob", rpm=5),
                                   RateLimit(scope="global", max_concurrent=9)])
    budgets = Budgets(profile, writer=None)  # type: ignore[arg-type]
    apply_key_limits(budgets, ring.active())
    assert budgets.rpm == {"key:bob": 5, "key:alice": 30}
    assert budgets.concurrency == {"global": 9, "key:alice": 3}
    assert budgets.key_budgets["alice"].usd == 2.0 and budgets.key_budgets["alice"].period == "week"
    assert budgets.applicable("shared", None, "alice")[-1].scope == "key:alice"
    revoke_key(db, "alice")
    ring.refresh()
    apply_key_limits(budgets, ring.active())
    assert "alice" not in budgets.key_budgets and "key:alice" not in budgets.rpm
    ring.close()
    db.close()
