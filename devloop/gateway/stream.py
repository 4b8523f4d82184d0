"""Streams: pieces pass through as they arrive while devloop/accumulate.py keeps the whole
answer (tool calls, finish reason, logprobs, usage); at the end (or on a break, or when the
client leaves) it goes to the cache and metering, and the ledger row is written before the
final piece is sent. A cache hit is replayed in the live stream's exact shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from devloop.accumulate import StreamAccumulator, replay
from devloop.backends import BackendError
from devloop.gateway.prepared import CacheStatus, CallResult, Prepared
from devloop.types import Delta, Usage

if TYPE_CHECKING:
    from devloop.gateway.core import Gateway


class StreamCall:
    """An open stream: iterate ``deltas()``; the ledger row is written before it ends."""

    def __init__(self, gw: Gateway, prep: Prepared, tier: str, backend: str, reason: str,
                 it: AsyncIterator[Delta] | None = None, first: Delta | None = None,
                 replay: CallResult | None = None) -> None:
        self.gw, self.prep, self.tier, self.backend, self.reason = gw, prep, tier, backend, reason
        self.request_id = replay.request_id if replay else prep.ctx.request_id
        self.cache: CacheStatus = replay.cache if replay else prep.cache
        self.model = replay.model if replay else gw.router.model_for(tier, prep.decision)
        self.result: CallResult | None = replay
        self._it, self._first, self._replay = it, first, replay
        self.usage: Usage | None = None
        self.error: BackendError | None = None

    async def deltas(self) -> AsyncIterator[Delta]:
        if self._replay is not None:
            c = self._replay.completion
            assert c is not None
            self.usage = c.usage
            for delta in replay(c):  # the stored answer in a live stream's exact shape
                yield delta
            return
        gw, prep = self.gw, self.prep
        assert self._it is not None and self._first is not None
        ttft = (time.perf_counter() - prep.started) * 1000
        acc = StreamAccumulator()  # keeps text, tool calls, finish, logprobs, usage
        status, error = 200, None
        try:
            pending: Delta | None = self._first
            while pending is not None:
                acc.add(pending)
                if pending.finish_reason is None:
                    yield pending
                try:
                    pending = await self._it.__anext__()
                except StopAsyncIteration:
                    pending = None
        except BackendError as exc:
            status, error, self.error = 502, str(exc)[:500], exc
            gw.router.mark_failure(self.tier, exc)
        except BaseException:
            status, error = 499, "client disconnected"  # the server closed us mid-stream
            raise
        finally:
            gw.release(prep)
            try:
                usage = acc.usage
                if usage is None or not usage.total_tokens:
                    usage = gw.meter.count(prep.req, acc.text)
                self.usage = usage
                completion = acc.completion(self.model, usage, self.tier)
                key = gw.served_key(prep, self.tier)
                cache_row = (gw.cache.put(key, completion, defer=True)
                             if status == 200 and key else None)
                self.result = await gw.meter.finish(prep, self.tier, self.backend, self.model,
                                                    self.reason, completion, 0.0, ttft, True,
                                                    status, error, cache_row)
            finally:
                gw.stream_done(prep)
        if self.error is not None:
            raise self.error
        yield Delta(finish_reason=completion.finish_reason, usage=usage)
