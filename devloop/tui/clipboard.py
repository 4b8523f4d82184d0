"""Copying text from the TUI: the system clipboard where a tool for it exists (wl-copy, xclip,
xsel, pbcopy, clip.exe), and always OSC 52 through the terminal (Textual's copy_to_clipboard),
which reaches the clipboard of the machine the terminal runs on, also over ssh; tmux passes it
on only with `set -g set-clipboard on`. Returns what was done, to tell the user."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

TOOLS: list[list[str]] = [["wl-copy"], ["xclip", "-selection", "clipboard"],
                          ["xsel", "--clipboard", "--input"], ["pbcopy"], ["clip.exe"]]


def system_copy(text: str) -> str | None:
    """The tool that took the text, or None when there is none (or no display for it)."""
    for argv in TOOLS:
        if shutil.which(argv[0]) is None:
            continue
        if argv[0] in ("xclip", "xsel") and not os.environ.get("DISPLAY"):
            continue
        if argv[0] == "wl-copy" and not os.environ.get("WAYLAND_DISPLAY"):
            continue
        try:
            subprocess.run(argv, input=text.encode(), timeout=2, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            continue
        return argv[0]
    return None


def copy_text(app: Any, text: str) -> str:
    """Copy and say how: 'the system clipboard (xclip) and OSC 52' or 'OSC 52 only ...'."""
    tool = system_copy(text)
    app.copy_to_clipboard(text)  # OSC 52 (and Textual's app.clipboard)
    if tool:
        return f"copied to the system clipboard ({tool}) and via OSC 52"
    hint = " (tmux: set -g set-clipboard on)" if os.environ.get("TMUX") else ""
    return f"sent via OSC 52 to the terminal's clipboard{hint}; if nothing arrives, press s to save"
