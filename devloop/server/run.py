"""`devloop serve`: the endpoint on uvicorn's own loop, with its signal handling."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time

from devloop.config import Profile, Settings
from devloop.logfile import quiet_libraries
from devloop.money import format_usd
from devloop.store.calls import CallRecord


def access_line(rec: CallRecord) -> str:
    """One line per call, like uvicorn's access log, with what devloop adds: tier, cache, cost."""
    when = time.strftime("%H:%M:%S", time.localtime(rec.ts or time.time()))
    parts = [f"{when} {rec.status} {rec.endpoint}", f"tier={rec.tier or '-'}",
             f"model={rec.model or '-'}", f"cache={rec.cache}", f"cost={format_usd(rec.cost_usd)}"]
    if rec.saved_usd:
        parts.append(f"saved={format_usd(rec.saved_usd)}")
    parts.append(f"{rec.prompt_tokens}+{rec.completion_tokens} tok {rec.latency_ms:.0f}ms")
    if rec.feature:
        parts.append(f"feature={rec.feature}")
    if rec.error:
        parts.append(f"error={rec.error[:120]!r}")
    return "  ".join(parts) + f"  id={rec.request_id}"


class AccessLog:
    """The access lines, written to stderr together once per ``FLUSH_S`` instead of one
    write per call (a write per request showed as 5% of a cache hit's CPU under load), and
    formatted then too: a line costs 11 µs, which no call should wait for.
    Called on the event loop (a ledger listener); what is left is written at exit."""

    FLUSH_S = 0.05

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        atexit.register(self.flush)

    def __call__(self, rec: CallRecord) -> None:
        if not self.records:
            asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)
        self.records.append(rec)

    def flush(self) -> None:
        records, self.records = self.records, []
        if records:
            sys.stderr.write("".join(access_line(rec) + "\n" for rec in records))
            sys.stderr.flush()


def run_server(settings: Settings, profile: Profile, ssl_certfile: str | None = None,
               ssl_keyfile: str | None = None, access_log: bool = True) -> None:
    """Serve until interrupted (uvicorn's own loop and signal handling)."""
    import uvicorn

    from devloop.server.app import create_app

    if not logging.getLogger().handlers:  # `devloop` set up devloop.log (devloop.logfile)
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    app = create_app(settings, profile, on_call=AccessLog() if access_log else None)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, loop="uvloop", http="httptools", lifespan="on",
                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, timeout_graceful_shutdown=5)
