"""The structure of a prompt text, for moves that keep its meaning.

Containers hold text that must stay together: code blocks, tag pairs (``<example>...
</example>``), lists (with the ``Parameters:``-style line that introduces them), and
markdown sections about examples or tools. Outside containers, the smallest unit holding a
dynamic value is found: a ``Label: {{value}}`` line (or a ``Label:`` line and the value on
the next line), else the sentence around it, else (for a role statement that must stay
first) the trailing clause. Pure functions over text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.S | re.M)
_OPEN_TAG = re.compile(r"<([A-Za-z][\w\-]*)(?:\s[^<>]*)?>")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d+[.)])[ \t]+\S")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*)$", re.M)
_SPECIAL_SECTION = re.compile(r"\b(example|examples|tool|tools|function|functions|schema)\b",
                              re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?[ \t]+(?=[A-Z{<\"'(\[])")
_ROLE = re.compile(r"^\W*(?:you are|you're|act as|as an? |your role|your job|i am )", re.I)
_REFERS = re.compile(r"\b(below|following|above|these|this section|as follows)\b", re.I)
_CLAUSE_SEP = re.compile(r"(?:,|;|\s[-\u2013\u2014])\s+")
_CONJ = re.compile(r"^(?:and|but|so|while|where|as|with)\s+", re.I)


@dataclass(frozen=True, slots=True)
class Container:
    start: int
    end: int
    kind: str  # "code", "tag <name>", "list", "example section", "tool section"


@dataclass(frozen=True, slots=True)
class Unit:
    start: int
    end: int
    kind: str  # "line", "sentence", "clause", "paragraph"
    movable: bool
    why: str = ""  # why it cannot move
    replacement: str | None = None  # a clause: what the sentence reads without it


def _tag_name(name: str) -> str:
    n = name.lower()
    if n.startswith("example"):
        return "example"
    if n in ("tool", "tools", "function", "functions", "tool_spec", "tool_definitions"):
        return "tool definition"
    return f"tag <{name}>"


def containers(text: str) -> list[Container]:
    """Spans that must stay whole, outermost first, merged where they overlap."""
    found: list[Container] = [Container(m.start(), m.end(), "code block")
                              for m in _FENCE.finditer(text)]
    for m in _OPEN_TAG.finditer(text):
        close = text.find(f"</{m.group(1)}>", m.end())
        if close >= 0:
            found.append(Container(m.start(), close + len(m.group(1)) + 3, _tag_name(m.group(1))))
    found.extend(_lists(text))
    headings = list(_HEADING.finditer(text))
    for i, h in enumerate(headings):
        if not _SPECIAL_SECTION.search(h.group(2)):
            continue
        level = len(h.group(1))
        end = len(text)
        for later in headings[i + 1:]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        kind = "example" if "example" in h.group(2).lower() else "tool definition"
        found.append(Container(h.start(), end, kind))
    found.sort(key=lambda c: (c.start, -c.end))
    merged: list[Container] = []
    for c in found:
        if merged and c.start < merged[-1].end:
            last = merged[-1]
            if c.end > last.end:
                merged[-1] = Container(last.start, c.end, last.kind)
            continue
        merged.append(c)
    return merged


def _lists(text: str) -> list[Container]:
    out: list[Container] = []
    lines = text.splitlines(keepends=True)
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line)
    i = 0
    while i < len(lines):
        if not _LIST_ITEM.match(lines[i]):
            i += 1
            continue
        first = i
        j = i + 1
        while j < len(lines):
            line = lines[j]
            if _LIST_ITEM.match(line) or (line.strip() and line[:1] in " \t"):
                j += 1
                continue
            # a blank line inside a list continues it when the next line is an item
            if not line.strip() and j + 1 < len(lines) and _LIST_ITEM.match(lines[j + 1]):
                j += 1
                continue
            break
        start = offsets[first]
        # The line that introduces the list ("Parameters:") belongs with it.
        if first > 0 and lines[first - 1].rstrip().endswith(":"):
            start = offsets[first - 1]
        end = offsets[j - 1] + len(lines[j - 1].rstrip("\n"))
        out.append(Container(start, end, "list"))
        i = j
    return out


def container_at(conts: list[Container], pos: int) -> Container | None:
    return next((c for c in conts if c.start <= pos < c.end), None)


def _line_span(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def _is_label_line(line: str, offset: int) -> bool:
    """``Today: {{today}}``-style: a short label, then the value."""
    head = line[:offset].rstrip()
    return head.endswith(":") and len(head.split()) <= 6 and "." not in head.rstrip(":")


def unit_at(text: str, pos: int, end: int, conts: list[Container], first_sentence: bool
            ) -> Unit:
    """The smallest movable unit of ``text`` that holds the dynamic span [pos, end)."""
    cont = container_at(conts, pos)
    ls, le = _line_span(text, pos)
    if cont is not None:
        return Unit(ls, le, "line", False, f"inside a {cont.kind}")
    line = text[ls:le]
    if _is_label_line(line, pos - ls) or line.lstrip().startswith("#"):
        return Unit(ls, le, "line", True)
    prev_end = ls - 1
    if line.strip() == text[pos:end].strip() and prev_end > 0:
        ps, _ = _line_span(text, prev_end - 1 if prev_end > 0 else 0)
        prev = text[ps:prev_end]
        if prev.rstrip().endswith(":") and len(prev.split()) <= 8 \
                and container_at(conts, ps) is None:
            return Unit(ps, le, "line", True)  # "Document:" and the value below it
        return Unit(ls, le, "line", True)
    # The sentence around it, inside this line.
    starts = [ls] + [ls + m.end() for m in _SENTENCE_END.finditer(line)]
    s = max(x for x in starts if x <= pos)
    later = [x for x in starts if x > pos]
    e = later[0] if later else le
    sentence = text[s:e].rstrip()
    e = s + len(sentence)
    # A role statement ("You are ...") stays where it is: first in the system prompt, or a
    # sentence of some length elsewhere ("You are helping {{user}}." may move).
    words = len(re.sub(r"\{\{[^}]*\}\}", "", sentence).split())
    role = bool(_ROLE.match(sentence)) and (
        (first_sentence and s == _first_sentence_start(text)) or words >= 6)
    if role:
        return _clause(text, s, e, pos, "the role statement stays first")
    if _REFERS.search(sentence):
        return Unit(s, e, "sentence", False, "it refers to the text around it "
                    f"({_REFERS.search(sentence).group(0)!r})")  # type: ignore[union-attr]
    return Unit(s, e, "sentence", True)


def _first_sentence_start(text: str) -> int:
    return len(text) - len(text.lstrip())


def _clause(text: str, s: int, e: int, pos: int, why: str) -> Unit:
    """A trailing clause holding the value, cut from a sentence that must stay."""
    sentence = text[s:e]
    seps = [m for m in _CLAUSE_SEP.finditer(sentence) if s + m.start() < pos]
    if seps:
        cut = seps[-1]
        head = sentence[:cut.start()]
        if len(head.split()) >= 3:
            end_punct = sentence[-1] if sentence[-1] in ".!?" else ""
            return Unit(s + cut.start(), e - len(end_punct), "clause", True,
                        replacement=head + end_punct)
    return Unit(s, e, "sentence", False, why)


def moved_text(text: str, unit: Unit) -> str:
    """How a moved unit reads on its own at the end of the message."""
    piece = text[unit.start:unit.end].strip()
    if unit.kind != "clause":
        return piece
    piece = _CLAUSE_SEP.sub("", piece, count=1) if _CLAUSE_SEP.match(piece) else piece
    piece = piece.lstrip(",;-\u2013\u2014 ")
    piece = _CONJ.sub("", piece)
    piece = piece[:1].upper() + piece[1:]
    return piece if piece.endswith((".", "!", "?")) else piece + "."


def remove_spans(text: str, spans: list[tuple[int, int, str | None]]) -> str:
    """``text`` without the given spans (a clause span is replaced by nothing, its sentence
    keeps its end punctuation); the whitespace they leave is tidied."""
    out = text
    for start, end, _replacement in sorted(spans, key=lambda s: -s[0]):
        before, after = out[:start], out[end:]
        if before.endswith((" ", "\t")) and (after[:1] in ("", "\n") or after[:1] == " "):
            before = before.rstrip(" \t")
        elif after.startswith(" "):
            after = after.lstrip(" ")
        if before.endswith("\n") and after.startswith("\n"):
            after = after[1:]
        out = before + after
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.lstrip("\n")
