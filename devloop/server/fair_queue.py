"""The fair queue in front of a team's GPU: a global cap on requests in flight, shared
fairly across keys. Pure asyncio (no I/O), driven by devloop/server/team.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass


class QueueFull(Exception):
    pass


@dataclass(slots=True, eq=False)
class Ticket:
    key: str
    entered: float
    future: asyncio.Future[None] | None = None  # None: admitted at once
    grants_at_entry: int = 0
    position: int = 0  # requests admitted ahead of it while it waited, +1; 0 = no wait
    granted_at: float | None = None
    released: bool = False

    @property
    def wait_ms(self) -> float:
        return ((self.granted_at or self.entered) - self.entered) * 1000


class FairQueue:
    """At most ``capacity`` admitted; a free slot goes to the waiting key holding the fewest.

    Ties go round robin (a key moves to the back of the rotation when served). No key may
    hold more than ``capacity - reserved`` slots, so a key holding none finds one free.
    """

    def __init__(self, capacity: int, reserved: int = 1, max_queued_per_key: int = 256) -> None:
        self.capacity = max(1, capacity)
        self.per_key = max(1, self.capacity - reserved)
        self.max_queued = max_queued_per_key
        self.in_use = 0
        self.grants = 0
        self.held: dict[str, int] = {}
        self.waiting: dict[str, deque[Ticket]] = {}  # insertion order is the rotation

    def queued(self, key: str | None = None) -> int:
        if key is not None:
            return len(self.waiting.get(key, ()))
        return sum(len(q) for q in self.waiting.values())

    def holding(self, key: str) -> int:
        """Slots held plus requests waiting: what this key has open."""
        return self.held.get(key, 0) + self.queued(key)

    def enter(self, key: str) -> Ticket:
        now = time.monotonic()
        ticket = Ticket(key, now)
        if self.in_use < self.capacity and self.held.get(key, 0) < self.per_key:
            self._grant(ticket, now)  # the queue is empty for this key's purposes
            return ticket
        if self.queued(key) >= self.max_queued:
            raise QueueFull(f"key {key} has {self.max_queued} requests waiting already")
        ticket.future = asyncio.get_running_loop().create_future()
        ticket.grants_at_entry = self.grants
        self.waiting.setdefault(key, deque()).append(ticket)
        return ticket

    def release(self, ticket: Ticket) -> None:
        """Give the slot back, or leave the queue when not admitted yet. Idempotent."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.granted_at is None:
            waiting = self.waiting.get(ticket.key)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(ticket)
                if not waiting:
                    del self.waiting[ticket.key]
            if ticket.future is not None and not ticket.future.done():
                ticket.future.cancel()
            return
        self.in_use -= 1
        left = self.held[ticket.key] - 1
        if left:
            self.held[ticket.key] = left
        else:
            del self.held[ticket.key]
        self._dispatch()

    def _grant(self, ticket: Ticket, now: float) -> None:
        ticket.granted_at = now
        if ticket.future is not None:
            ticket.position = self.grants - ticket.grants_at_entry + 1
            ticket.future.set_result(None)
        self.grants += 1
        self.in_use += 1
        self.held[ticket.key] = self.held.get(ticket.key, 0) + 1

    def _dispatch(self) -> None:
        while self.in_use < self.capacity and self.waiting:
            eligible = [k for k in self.waiting if self.held.get(k, 0) < self.per_key]
            if not eligible:
                return
            key = min(eligible, key=lambda k: self.held.get(k, 0))  # first in rotation on ties
            waiting = self.waiting.pop(key)
            ticket = waiting.popleft()
            if waiting:
                self.waiting[key] = waiting  # to the back of the rotation
            self._grant(ticket, time.monotonic())
