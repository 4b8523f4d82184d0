"""Hosting the HTTP endpoint inside an event loop someone else runs (the TUI's).

The gateway and uvicorn run as tasks on the caller's loop (Textual's), so the ledger listener
is called on the same loop that draws the screen. uvicorn's signal handlers are disabled: the
host application owns the terminal and its quit key; quitting sets ``should_exit`` and awaits
a graceful shutdown. Here in server/ because only server/ imports the web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from devloop.config import Profile, Settings
from devloop.gateway import Gateway
from devloop.store.calls import CallRecord

log = logging.getLogger("devloop.hosting")
State = Literal["starting", "serving", "stopping", "stopped", "failed"]


@dataclass(slots=True)
class HostStatus:
    state: State
    detail: str = ""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn so a busy port is an OSError here, not a sys.exit there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class EndpointHost:
    """One gateway and one uvicorn server, started and stopped on the caller's loop."""

    def __init__(self, settings: Settings, profile: Profile,
                 on_call: Callable[[CallRecord], None],
                 on_status: Callable[[HostStatus], None],
                 prepare: Callable[[], None] | None = None) -> None:
        self.settings, self.profile = settings, profile
        self.prepare = prepare  # run on a thread before the gateway opens the database
        self.on_call, self.on_status = on_call, on_status
        self.gateway: Gateway | None = None
        self.server: Any = None
        self.status = HostStatus("stopped")
        self._stopping = False
        self._done = asyncio.Event()
        self._done.set()
        self._ready = asyncio.Event()  # set once the gateway started, or the start failed

    @property
    def base_url(self) -> str:
        host = self.settings.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.port}"

    def _set(self, state: State, detail: str = "") -> None:
        self.status = HostStatus(state, detail)
        self.on_status(self.status)

    async def serve(self) -> None:
        """Run until ``stop``; returns once the port is closed and the gateway is shut."""
        import uvicorn  # imported here: only a host that serves pays for it

        from devloop.server.app import create_app

        self._done.clear()
        self._set("starting", self.base_url)
        sock: socket.socket | None = None
        try:
            try:
                sock = bind_socket(self.settings.host, self.settings.port)
            except OSError as exc:
                self._set("failed", f"cannot serve on {self.settings.host}:{self.settings.port}: "
                          f"{exc.strerror or exc}")
                return
            # Gateway() opens the database and applies migrations: off the event loop.
            self.gateway = await asyncio.to_thread(self._make_gateway)
            self.gateway.listeners.append(self.on_call)
            await self.gateway.start()
            self._ready.set()
            app = create_app(self.settings, self.profile, gateway=self.gateway)
            config = uvicorn.Config(app, log_config=None, log_level=self.settings.log_level,
                                    access_log=False, lifespan="on",
                                    timeout_graceful_shutdown=3)
            self.server = quiet_server(config)
            self.server.should_exit = self._stopping  # quit pressed while starting
            serving = asyncio.create_task(self.server.serve(sockets=[sock]))
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.01)
            if self.server.started:
                self._set("serving", self.base_url)
            try:
                await serving
            except SystemExit:  # uvicorn exits when the app's lifespan fails
                self._set("failed", "the endpoint failed to start (see tui.log)")
        except Exception as exc:  # noqa: BLE001 - shown on screen; the TUI stays usable
            log.exception("endpoint failed")
            self._set("failed", f"{type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()
            self._ready.set()
            await self._close_gateway()
            self.server = None
            if self.status.state != "failed":
                self._set("stopped")
            self._done.set()

    async def ready(self) -> Gateway | None:
        """The started Gateway (None when the endpoint failed to start or has stopped)."""
        await self._ready.wait()
        return self.gateway

    def _make_gateway(self) -> Gateway:
        if self.prepare is not None:
            self.prepare()
        return Gateway(self.settings, self.profile)

    async def _close_gateway(self) -> None:
        gw, self.gateway = self.gateway, None
        if gw is not None:
            with contextlib.suppress(ValueError):
                gw.listeners.remove(self.on_call)
            await gw.close()

    async def stop(self, timeout: float = 8.0) -> None:
        """Graceful: stop accepting, let in-flight requests finish, close the gateway."""
        if self._done.is_set():
            return
        self._set("stopping")
        self._stopping = True
        if self.server is not None:
            self.server.should_exit = True
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            if self.server is not None:
                self.server.force_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), 2)


def quiet_server(config: Any) -> Any:
    """A uvicorn Server that leaves signal handling to the TUI."""
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the TUI owns signals and the terminal

    return QuietServer(config)
