"""The server's background tasks for trust: the judge worker and the alert scheduler.

``devloop/server/app.py``'s lifespan starts them with the gateway and stops them before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

Gateway = Any  # devloop.gateway.core.Gateway


class TrustTasks:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> TrustTasks:
        from devloop.alerts import AlertScheduler

        if self.gw.profile.audit is not None and self.gw.profile.audit.sample > 0:
            from devloop.audit.worker import AuditWorker

            worker = AuditWorker(self.gw)
            self.tasks.append(asyncio.create_task(worker.run_forever(), name="devloop-audit"))
        scheduler = AlertScheduler(self.gw)
        self.gw.alerts = scheduler
        self.tasks.append(asyncio.create_task(scheduler.run_forever(), name="devloop-alerts"))
        return self

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
