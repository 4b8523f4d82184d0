"""`devloop continue-config`: print a Continue.dev config.yaml for the running endpoint."""

from __future__ import annotations

import click

from devloop.agents import client_base_url
from devloop.commands._common import fail, load
from devloop.continue_config import (
    PROVIDERS,
    Provider,
    autocomplete_model_for,
    models_for_profile,
    render_continue_config,
)


@click.command("continue-config")
@click.option("--provider", type=click.Choice(PROVIDERS), default="openai", show_default=True,
              help="Wire protocol Continue uses to talk to devloop.")
@click.option("--base-url", default=None, metavar="URL",
              help="devloop's address [default: http://DEVLOOP_HOST:DEVLOOP_PORT].")
@click.option("--port", type=int, default=None,
              help="Port of the devloop endpoint (default 8790, or DEVLOOP_PORT).")
@click.option("--profile", "profile_name", default=None, metavar="NAME",
              help="Routing profile whose tiers are listed [default: DEVLOOP_PROFILE].")
@click.option("--api-key", default=None, metavar="KEY",
              help="Key for a devloop running in --team mode.")
def continue_config_cmd(provider: Provider, base_url: str | None, port: int | None,
                        profile_name: str | None, api_key: str | None) -> None:
    """Print a Continue.dev config.yaml that points the IDE at devloop."""
    if base_url is not None and port is not None:
        fail("--port: give either --base-url or --port, not both")
    settings, profile = load(profile_name, port=port)
    try:
        text = render_continue_config(
            base_url or client_base_url(settings.host, settings.port),
            provider,
            models_for_profile(list(profile.tiers)),
            autocomplete_model=autocomplete_model_for(profile.tiers),
            api_key=api_key,
        )
    except ValueError as err:
        fail(f"--base-url: {err}")
    click.echo(text, nl=False)
