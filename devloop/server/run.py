"""`devloop serve`: the endpoint on uvicorn's own loop, with its signal handling."""

from __future__ import annotations

import logging

from devloop.config import Profile, Settings


def run_server(settings: Settings, profile: Profile, ssl_certfile: str | None = None,
               ssl_keyfile: str | None = None) -> None:
    """Serve until interrupted (uvicorn's own loop and signal handling)."""
    import uvicorn

    from devloop.server.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(settings, profile)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, loop="uvloop", http="httptools", lifespan="on",
                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, timeout_graceful_shutdown=5)
