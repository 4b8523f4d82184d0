"""Where logs and library warnings go: $DEVLOOP_HOME/devloop.log, and the terminal only with
--verbose (or DEVLOOP_VERBOSE=1).

Routine events (a tier in cooldown, a library's FutureWarning) are not the user's business
while a command runs; they are kept in the log file for when something goes wrong.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOG_NAME = "devloop.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_devloop_handler"
# litellm logs every call at INFO ("LiteLLM completion() model= ...") through its own stderr
# handler, in between devloop's access lines; its warnings and errors still show.
QUIET_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def quiet_libraries() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def default_home() -> Path:
    """$DEVLOOP_HOME as Settings reads it, without validating anything else."""
    value = os.environ.get("DEVLOOP_HOME")
    return Path(value).expanduser() if value else Path.home() / ".local" / "share" / "devloop"


def verbose_from_env() -> bool:
    return os.environ.get("DEVLOOP_VERBOSE", "").lower() in ("1", "true", "yes")


def setup_logging(home: Path | None = None, *, verbose: bool = False, level: str = "info",
                  filename: str = LOG_NAME) -> Path | None:
    """Route the root logger and Python warnings to the log file (and stderr with verbose).

    Returns the log file's path, or None when the folder cannot be written (then logs go to
    stderr only with verbose; the command itself reports the folder problem)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    path: Path | None = (home or default_home()) / filename
    handlers: list[logging.Handler] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        handlers.append(logging.FileHandler(path, encoding="utf-8"))  # type: ignore[arg-type]
    except OSError:
        path = None
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    if not handlers:
        handlers.append(logging.NullHandler())  # not Python's last resort, which is stderr
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries()
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the file
    return path
