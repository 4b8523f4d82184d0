"""Judge verdicts, parsed so that they fail closed: a reply that is not a verdict is None
(an error), never a disagreement."""

from __future__ import annotations

import json
import re

AGREE_WORDS = ("agree", "yes", "pass", "same", "equivalent")
DISAGREE_WORDS = ("disagree", "no", "fail", "different")


def parse_verdict(text: str, pass_words: tuple[str, ...] = AGREE_WORDS,
                  fail_words: tuple[str, ...] = DISAGREE_WORDS) -> bool | None:
    """True (agree/pass), False (disagree/fail), or None when the reply is not a verdict.

    Accepted: a JSON object with ``verdict`` (one of the words) or ``agree`` (a bool); a
    reply whose first word is one of the words; a line ``VERDICT: <word>``. Anything
    else, or a reply naming both kinds, is None.
    """
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("agree"), bool):
            return bool(data["agree"])
        word = str(data.get("verdict", "")).strip().lower()
        return True if word in pass_words else False if word in fail_words else None
    m = re.search(r"verdict\s*[:=]\s*\**\s*([a-z]+)", stripped, re.IGNORECASE)
    first = m.group(1).lower() if m else (re.findall(r"[a-z]+", stripped.lower())[:1] or [""])[0]
    if first in pass_words and first not in fail_words:
        return True
    if first in fail_words:
        return False
    return None
