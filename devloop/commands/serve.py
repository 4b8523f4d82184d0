"""`devloop serve` (headless) and `devloop` (the TUI hosting the same endpoint)."""

from __future__ import annotations

import sys

import click

from devloop.commands._common import fail, load
from devloop.commands._preflight import preflight
from devloop.config import Profile, Settings


def run_server(settings: Settings, profile: Profile, ssl_certfile: str | None = None,
               ssl_keyfile: str | None = None, access_log: bool = True) -> None:
    from devloop.server.run import run_server as serve_forever

    scheme = "https" if ssl_certfile else "http"
    if not ssl_certfile and settings.host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"devloop: warning: listening on {settings.host} beyond this machine without "
                   f"TLS: keys and prompts cross the network in clear text; use --ssl-certfile "
                   f"and --ssl-keyfile, or a TLS proxy in front", err=True)
    click.echo(f"devloop {'team ' if settings.team else ''}endpoint on "
               f"{scheme}://{settings.host}:{settings.port} (profile {profile.name}; "
               f"OpenAI at /v1, Ollama at /api)", err=True)
    serve_forever(settings, profile, ssl_certfile, ssl_keyfile, access_log=access_log)


@click.command(epilog="Exit status: 0 after a clean shutdown (ctrl+c, SIGTERM); 2 for a bad "
                      "option or profile, or an environment problem found before starting "
                      "(the port is in use, the state folder $DEVLOOP_HOME is not writable, "
                      "an embedded tier's model weights are missing), printed as one line.")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8790).")
@click.option("--profile", default=None, help="Profile name or YAML path (default: default).")
@click.option("--team", is_flag=True, default=False, help="Team mode: keys required.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate: serve HTTPS (with --ssl-keyfile).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM private key of --ssl-certfile.")
@click.option("--metrics-public", is_flag=True, default=False,
              help="Team mode: serve /metrics without a key (else only to an admin key, "
                   "`devloop keys create NAME --admin`).")
@click.option("--quiet", "-q", is_flag=True, default=False,
              help="No access-log line per call (time, status, endpoint, tier, model, cache, "
                   "cost, tokens, latency, request id) on stderr.")
def serve(host: str | None, port: int | None, profile: str | None, team: bool,
          ssl_certfile: str | None, ssl_keyfile: str | None, quiet: bool,
          metrics_public: bool) -> None:
    """Serve the OpenAI- and Ollama-compatible endpoint without the TUI."""
    settings, prof = load(profile, host=host, port=port, team=team or None,
                          metrics_public=metrics_public or None)
    if bool(ssl_certfile) != bool(ssl_keyfile):
        fail("--ssl-certfile and --ssl-keyfile go together: give both or neither")
    problem = preflight(settings, prof)
    if problem:
        fail(problem)
    if settings.team:
        from devloop.store.keys import count_active_keys

        if count_active_keys(settings.db_path) == 0:
            fail("team mode needs at least one key; create one with "
                 "`devloop keys create NAME` and hand it to its user")
    try:
        run_server(settings, prof, ssl_certfile, ssl_keyfile, access_log=not quiet)
    except OSError as exc:
        fail(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}")


@click.command(epilog="Exit status: 0 on quit; 2 for a bad option or profile, or an environment "
                      "problem (state folder not writable, missing weights). A busy port does "
                      "not stop the TUI: it shows the ledger and says the endpoint is not served.")
@click.option("--host", default=None, help="Address the hosted endpoint binds (default 127.0.0.1).")
@click.option("--port", type=int, default=None,
              help="Port of the endpoint the TUI hosts (default 8790).")
@click.option("--profile", default=None,
              help="Profile name or YAML path the endpoint routes with (default: default).")
def tui(host: str | None, port: int | None, profile: str | None) -> None:
    """Open the TUI, which hosts the endpoint in the same process."""
    settings, prof = load(profile, host=host, port=port)
    problem = preflight(settings, prof, bind=False)
    if problem:
        fail(problem)
    from devloop.tui.app import run_tui

    sys.exit(run_tui(settings, prof))
