"""The agent session a call belongs to, for `devloop spend --by session` and the
per-session provider-cache hit rate.

Sources, first found wins: ``X-Devloop-Session`` (any client), Claude Code's
``X-Claude-Code-Session-Id`` header, Codex CLI's ``session_id`` header, and the
``_session_<id>`` suffix Claude Code puts in Anthropic ``metadata.user_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HEADERS = ("x-devloop-session", "x-claude-code-session-id", "session_id", "session-id")
METADATA_SESSION = re.compile(r"_session_([0-9A-Za-z-]{8,64})$")
MAX_LEN = 128


def session_from(headers: Mapping[str, str], body: Mapping[str, Any] | None = None
                 ) -> str | None:
    """The session id from lower-cased ``headers`` or an Anthropic body's metadata."""
    for name in HEADERS:
        value = (headers.get(name) or "").strip()
        if value:
            return value[:MAX_LEN]
    metadata = (body or {}).get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str):
        m = METADATA_SESSION.search(user_id)
        if m:
            return m.group(1)
    return None
