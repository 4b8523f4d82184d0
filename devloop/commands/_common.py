"""What every command shares: the one-line error (exit 2) and loading settings and profile."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from devloop.config import ConfigError, Profile, Settings, load_profile


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: the contract for user mistakes (never a traceback)."""
    click.echo(f"devloop: error: {message}", err=True)
    sys.exit(2)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus the options given (None: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        field = "_".join(str(p) for p in first["loc"]).upper()
        if first["loc"] and str(first["loc"][0]) in given:
            fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
        fail(f"environment: DEVLOOP_{field}: {first['msg']}")
    except ConfigError as exc:
        fail(str(exc))


def load(profile: str | None = None, **overrides: Any) -> tuple[Settings, Profile]:
    """Settings (see load_settings) and the chosen profile (else DEVLOOP_PROFILE's)."""
    settings = load_settings(**overrides)
    if profile:
        settings.profile = profile
    try:
        return settings, load_profile(settings.profile)
    except ConfigError as exc:
        fail(str(exc))
