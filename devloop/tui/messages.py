"""Messages between the endpoint, the file watcher, widgets and screens.

None of them bubble: the app receives each from its source and hands every screen its own
copy; a copy bubbling back up to the app would be broadcast again, forever.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from devloop.alerts import Alert
from devloop.server.hosting import HostStatus
from devloop.store.calls import CallRecord


class CallLogged(Message, bubble=False):
    """The gateway wrote a ledger row (posted from its listener, on the app's loop)."""

    def __init__(self, record: CallRecord) -> None:
        super().__init__()
        self.record = record


class EndpointStatus(Message, bubble=False):
    """The hosted endpoint started, stopped or failed."""

    def __init__(self, status: HostStatus) -> None:
        super().__init__()
        self.status = status


class EvalsetChanged(Message, bubble=False):
    """An eval set file was created, edited or removed (from the watchdog thread)."""

    def __init__(self, path: Path, removed: bool = False) -> None:
        super().__init__()
        self.path = path
        self.removed = removed


class StagesChanged(Message, bubble=False):
    """`devloop check` or `devloop eval` finished: the ladder tables have new rows."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path


class CheckProgress(Message, bubble=False):
    """The automatic checker started, advanced or finished a check of one eval set."""

    def __init__(self, path: Path, kind: str, text: str = "") -> None:
        super().__init__()
        self.path = path
        self.kind = kind  # started, case, stage, done, invalid, stale, removed, ready, profile
        self.text = text


class AlertsChecked(Message, bubble=False):
    """The alert rules were evaluated on the ledger (posted by a thread worker)."""

    def __init__(self, alerts: list[Alert]) -> None:
        super().__init__()
        self.alerts = alerts
