"""The bottom line: the screen's keys (clickable). Built once per screen: Textual's Footer
recomposes on every focus change, which costs a repaint each time a screen opens."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

KEY_NAMES = {"slash": "/", "escape": "esc", "enter": "⏎", "ctrl+p": "^p", "ctrl+q": "^q"}


def key_label(key: str) -> str:
    first = key.split(",")[0]
    return KEY_NAMES.get(first, first)


class KeyBar(Static):
    def __init__(self, bindings: list[Any]) -> None:
        super().__init__(id="keybar")
        self.bindings = [b for b in bindings if isinstance(b, Binding) and b.show]

    def on_mount(self) -> None:
        keys = [(key_label(b.key), b.description, f"screen.{b.action}") for b in self.bindings]
        keys += [("1-6", "screens", None), ("q", "Quit", "app.quit"),
                 ("^p", "palette", "app.command_palette")]
        text = Text()
        for i, (key, description, action) in enumerate(keys):
            click = Style.from_meta({"@click": action}) if action else Style()
            if i:
                text.append("  ")
            text.append(key, Style(bold=True) + click)
            text.append(f" {description}", click)
        self.update(text)
