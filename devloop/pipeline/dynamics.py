"""Dynamic content in a prompt: what varies between calls (placeholders, and literal
timestamps, dates and ids that an application fills in per call), classified by kind.

Pure functions over text.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from devloop.evals.evalset import PLACEHOLDER, var_to_text

DynamicKind = Literal["timestamp", "date", "id", "user", "document", "placeholder"]
DOCUMENT_CHARS = 800  # a var this long per call is a document (an email, a diff, a page)

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
# Literal text that an application almost always fills in per call, even when an eval set
# pins it: the order matters (timestamps before the dates they contain).
LITERAL_PATTERNS: list[tuple[DynamicKind, re.Pattern[str]]] = [
    ("timestamp", re.compile(
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b")),
    ("timestamp", re.compile(r"\b\d{1,2}:\d{2}:\d{2}\b")),
    ("date", re.compile(r"\b\d{4}-\d{2}-\d{2}\b")),
    ("date", re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b")),
    ("date", re.compile(rf"\b{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b")),
    ("date", re.compile(rf"\b\d{{1,2}} {_MONTHS} \d{{4}}\b")),
    ("id", re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}\b")),
    ("id", re.compile(r"\b(?:req|sess|session|usr|user|cus|msg|chatcmpl|run|trace|org)"
                      r"[_-][A-Za-z0-9]{8,}\b")),
    ("id", re.compile(r"\b[0-9a-f]{16,}\b")),
]
_NAME_KINDS: list[tuple[DynamicKind, re.Pattern[str]]] = [
    ("timestamp", re.compile(r"(^|_)(time|timestamp|ts|now|datetime)(_|$)", re.I)),
    ("date", re.compile(r"(^|_)(date|today|day)(_|$)", re.I)),
    ("id", re.compile(r"(^|_)(id|uuid|guid|session|request|trace|nonce)(_|$)", re.I)),
    ("user", re.compile(r"user|name|email|customer|account|tenant|org|member|person|author"
                        r"|locale|profile|reviewer|owner|assignee|client|recipient|sender"
                        r"|employee|patient|student|contact|phone|address|city|country", re.I)),
]


def literal_dynamics(text: str) -> list[tuple[DynamicKind, int, int]]:
    """Timestamps, dates and ids written literally in ``text`` (outside placeholders)."""
    blocked = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    found: list[tuple[DynamicKind, int, int]] = []
    for kind, pattern in LITERAL_PATTERNS:
        for m in pattern.finditer(text):
            span = (m.start(), m.end())
            if any(s < span[1] and span[0] < e for s, e in blocked):
                continue
            found.append((kind, *span))
            blocked.append(span)
    return sorted(found, key=lambda f: f[1])


def _looks_like(kind: DynamicKind, value: str) -> bool:
    return any(k == kind and p.fullmatch(value.strip()) for k, p in LITERAL_PATTERNS)


def placeholder_kind(name: str, values: list[Any]) -> DynamicKind:
    """Classify a placeholder by the values the cases give it, then by its name."""
    texts = [var_to_text(v) for v in values if v is not None]
    for kind in ("timestamp", "date", "id"):
        if texts and all(_looks_like(kind, t) for t in texts):
            return kind  # type: ignore[return-value]
    if texts and sum(len(t) for t in texts) / len(texts) >= DOCUMENT_CHARS:
        return "document"
    for kind, pattern in _NAME_KINDS:
        if pattern.search(name):
            return kind
    return "placeholder"
