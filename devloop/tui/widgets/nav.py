"""The top bar: the six screens (clickable, keys 1-6) and the endpoint's state."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from devloop.server.hosting import HostStatus

SCREENS = (
    ("dashboard", "Dashboard"),
    ("calls", "Calls"),
    ("prompts", "Prompts"),
    ("evals", "Evals"),
    ("spend", "Spend"),
    ("backends", "Backends"),
)
STATE_STYLE = {"serving": "green", "starting": "yellow", "stopping": "yellow", "failed": "red",
               "stopped": "dim"}


class NavTabs(Static):
    def __init__(self, current: str) -> None:
        super().__init__(id="nav-tabs")
        self.current = current

    def on_mount(self) -> None:
        parts = []
        for i, (mode, title) in enumerate(SCREENS, start=1):
            if mode == self.current:
                parts.append(f"[b reverse] {i} {title} [/]")
            else:  # clicking a tab runs the same action as its number key
                parts.append(f"[@click=app.switch_mode('{mode}')] [b]{i}[/b] {title} [/]")
        self.update("".join(parts))


class EndpointBadge(Static):
    """`devloop ● :8790` - green serving, yellow starting, red failed, dim when off."""

    def __init__(self) -> None:
        super().__init__(id="nav-endpoint")

    def on_mount(self) -> None:
        self.watch(self.app, "endpoint", self.show_status)

    def show_status(self, status: HostStatus | None) -> None:
        text = Text("devloop ", style="bold")
        if status is None:
            text.append("○ off", style="dim")
        else:
            port = str(getattr(self.app, "settings").port)  # noqa: B009 - DevloopApp attribute
            text.append(f"● :{port}", style=STATE_STYLE.get(status.state, "dim"))
        self.update(text)
        self.tooltip = status.detail if status else "the endpoint is not hosted by this window"


class NavBar(Horizontal):
    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def compose(self) -> ComposeResult:
        yield NavTabs(self.current)
        yield EndpointBadge()
