"""How a file is named in reports and in the database."""

from __future__ import annotations

from pathlib import Path


def display_path(path: str | Path) -> str:
    """Relative to the working folder when the file is inside it (so `check`, `watch`, `eval`
    and the TUI agree on a file's name), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)
