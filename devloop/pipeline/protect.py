"""Compression that cannot garble what must survive: protected spans are never shown to the
compressor, and long text goes through it in bounded windows.

Protected (kept verbatim): code blocks and inline code, tags (``<answer>``, ``</doc>``),
placeholders, markdown links and link templates, URLs, e-mail addresses, numbers (with their
units and separators), identifiers (snake_case, camelCase, dotted.names, names with digits
or ALL-CAPS), and quoted strings. The text between them is compressed only where a run of
prose is long enough to be worth it; a run longer than ``window_tokens`` is split at
sentence ends into windows of at most that size, so peak memory does not grow with the text.
LLMLingua's ``force_tokens`` exists only for LLMLingua-2; pre-splitting works with any
compressor. Pure apart from the ``compress`` callable it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PROTECTED = re.compile(
    r"```.*?(?:```|\Z)"  # fenced code
    r"|`[^`\n]+`"  # inline code
    r"|\{\{\s*[A-Za-z_]\w*\s*\}\}"  # placeholders
    r"|</?[A-Za-z][\w\-]*(?:\s[^<>]*)?/?>"  # tags
    r"|!?\[[^\]\n]*\]\([^)\n]*\)"  # markdown links and link templates
    r"|\[[^\]\n]*\]"  # [n] citations, [label] templates
    r"|\b(?:https?|ftp)://[^\s<>\"')\]]+"  # URLs
    r"|\b[\w.+-]+@[\w-]+\.[\w.-]+\b"  # e-mail
    r"|\"[^\"\n]{1,80}\"|'[^'\n]{1,40}'"  # short quoted strings
    r"|[$\u20ac\u00a3]?\b\d[\d,.:/\-]*(?:\s?(?:%|ms|s|kb|mb|gb|tb|usd|eur|gbp|px|k|m))?\b"
    r"|\b[A-Za-z_]+[A-Za-z0-9]*(?:(?:[_.]|::)[A-Za-z0-9_]+)+\b"  # snake_case, dotted.names
    r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b"  # camelCase
    r"|\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\b"  # PascalCase
    r"|\b[A-Z][A-Z0-9_]{1,}\b"  # ALL_CAPS, acronyms
    r"|\b[A-Za-z]+\d[\w-]*\b",  # names with digits (gpt4o, GL-5520 handled by numbers)
    re.S,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Where text splits before compression: blank lines, and line breaks before a list item, a
# heading, a quote or a citation; the separators are kept as they are.
_BLOCKS = re.compile(r"(\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*+#>\[|]|\d+[.)])))")
MIN_RUN_WORDS = 8  # shorter prose between protected spans is kept as it is


def protected_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in PROTECTED.finditer(text)]


def _windows(run: str, window_tokens: int, count: Callable[[str], int]) -> list[str]:
    """``run`` cut at sentence ends into pieces of at most about ``window_tokens``."""
    if count(run) <= window_tokens:
        return [run]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE.split(run):
        candidate = f"{current} {sentence}" if current else sentence
        if current and count(candidate) > window_tokens:
            out.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def compress_protected(text: str, rate: float, compress: Callable[[str, float], str],
                       count: Callable[[str], int], window_tokens: int = 400) -> str:
    """``text`` with only its unprotected prose runs passed through ``compress``."""
    pieces: list[str] = []
    pos = 0
    for start, end in [*protected_spans(text), (len(text), len(text))]:
        # Paragraph breaks, list items and headings keep their line breaks; the lines of a
        # wrapped prose paragraph go to the compressor as one piece (a 135M model leaves
        # short pieces as they are).
        for line in _BLOCKS.split(text[pos:start]):
            if _BLOCKS.fullmatch(line) or len(line.split()) < MIN_RUN_WORDS:
                pieces.append(line)
                continue
            lead = line[: len(line) - len(line.lstrip())]
            trail = line[len(line.rstrip()):]
            body = " ".join(part.strip() for part in line.strip().split("\n"))
            done = [compress(w, rate).strip()
                    for w in _windows(body, window_tokens, count)]
            pieces.append(lead + " ".join(d for d in done if d) + trail)
        pieces.append(text[start:end])
        pos = end
    return "".join(pieces)


def missing_protected(before: str, after: str) -> list[str]:
    """Protected spans of ``before`` that ``after`` lost (empty by construction)."""
    out: list[str] = []
    rest = after
    for start, end in protected_spans(before):
        span = before[start:end]
        idx = rest.find(span)
        if idx < 0:
            out.append(span)
        else:
            rest = rest[idx + len(span):]
    return out


def prose_view(text: str) -> str:
    """``text`` without its inline protected spans (fenced code stays): what the compressor
    would see, for judging whether the rest is prose or code."""
    return PROTECTED.sub(lambda m: m.group(0) if m.group(0).startswith("```") else " ", text)
