"""`devloop serve` (headless) and `devloop` (the TUI hosting the same endpoint)."""

from __future__ import annotations

import sys

import click

from devloop.commands._common import fail, load
from devloop.config import Profile, Settings


def run_server(settings: Settings, profile: Profile, ssl_certfile: str | None = None,
               ssl_keyfile: str | None = None) -> None:
    from devloop.server.run import run_server as serve_forever

    scheme = "https" if ssl_certfile else "http"
    click.echo(f"devloop {'team ' if settings.team else ''}endpoint on "
               f"{scheme}://{settings.host}:{settings.port} (profile {profile.name}; "
               f"OpenAI at /v1, Ollama at /api)", err=True)
    serve_forever(settings, profile, ssl_certfile, ssl_keyfile)


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8790).")
@click.option("--profile", default=None, help="Profile name or YAML path (default: default).")
@click.option("--team", is_flag=True, default=False, help="Team mode: keys required.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None)
def serve(host: str | None, port: int | None, profile: str | None, team: bool,
          ssl_certfile: str | None, ssl_keyfile: str | None) -> None:
    """Serve the OpenAI- and Ollama-compatible endpoint without the TUI."""
    settings, prof = load(profile, host=host, port=port, team=team or None)
    if settings.team:
        from devloop.store.keys import count_active_keys

        if count_active_keys(settings.db_path) == 0:
            fail("team mode needs at least one key; create one with "
                 "`devloop keys create NAME` and hand it to its user")
    try:
        run_server(settings, prof, ssl_certfile, ssl_keyfile)
    except OSError as exc:
        fail(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}")


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8790).")
@click.option("--profile", default=None, help="Profile name or YAML path (default: default).")
def tui(host: str | None, port: int | None, profile: str | None) -> None:
    """Open the TUI, which hosts the endpoint in the same process."""
    settings, prof = load(profile, host=host, port=port)
    from devloop.tui.app import run_tui

    sys.exit(run_tui(settings, prof))
