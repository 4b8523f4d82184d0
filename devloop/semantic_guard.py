"""Before a semantic-cache hit is served: do the two prompts agree where it matters?

Embeddings put "capital of Germany" next to "capital of France" and "Is 7917 prime" next
to "Is 7919 prime"; the answers differ. So a hit is served only when the two prompts have
the same numbers, the same negation, the same named entities (capitalised names that are
not ordinary sentence openers) and the same code spans. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’_-]*")
NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "isnt", "arent", "wasnt", "werent", "dont", "doesnt", "didnt", "cant", "couldnt",
    "wont", "wouldnt", "shouldnt", "hasnt", "havent", "hadnt", "mustnt", "aint", "except",
})
# Capitalised words that start questions and instructions; not names.
OPENERS = frozenset([
    "a", "an", "the", "i", "is", "are", "was", "were", "am", "be", "do", "does", "did",
    "can", "could", "would", "should", "will", "shall", "may", "might", "must", "what",
    "whats", "which", "who", "whom", "whose", "where", "when", "why", "how", "tell", "give",
    "show", "list", "name", "explain", "describe", "write", "please", "help", "find",
    "make", "let", "lets", "if", "in", "on", "at", "of", "for", "to", "and", "or", "but",
    "so", "yes", "ok", "okay", "hi", "hello", "hey", "thanks", "thank", "my", "your", "our",
    "their", "its", "it", "this", "that", "these", "those", "there", "here", "then", "now",
    "also", "compare", "summarize", "summarise", "translate", "define", "calculate",
    "compute", "convert", "create", "generate",
])


@dataclass(slots=True, frozen=True)
class Signature:
    numbers: tuple[str, ...]
    negated: bool
    entities: frozenset[str]
    code: frozenset[str]


def _norm_number(text: str) -> str:
    t = text.replace(",", "").lstrip("+")
    try:
        return repr(float(t.rstrip("%"))) + ("%" if t.endswith("%") else "")
    except ValueError:
        return t


def signature(text: str) -> Signature:
    code = frozenset(" ".join(m.strip("`").split()) for m in CODE.findall(text))
    prose = CODE.sub(" ", text)
    numbers = tuple(sorted(_norm_number(n) for n in NUMBER.findall(prose)))
    words = WORD.findall(prose)
    plain = [w.lower().replace("'", "").replace("’", "") for w in words]
    negated = any(w in NEGATIONS for w in plain) or bool(re.search(r"n[’']t\b", prose, re.I))
    entities = set()
    for w in words:
        base = re.sub(r"[’']s$", "", w)
        if base[:1].isupper() and base.lower() not in OPENERS:
            entities.add(base.lower())
    return Signature(numbers, negated, frozenset(entities), code)


def disagreement(a: str, b: str) -> str | None:
    """None when the prompts agree on numbers, negation, entities and code; else why not."""
    sa, sb = signature(a), signature(b)
    if sa.numbers != sb.numbers:
        return f"numbers differ ({', '.join(sa.numbers) or '-'} vs {', '.join(sb.numbers) or '-'})"
    if sa.negated != sb.negated:
        return "one prompt is negated, the other is not"
    if sa.entities != sb.entities:
        diff = sorted(sa.entities ^ sb.entities)
        return f"named entities differ ({', '.join(diff)})"
    if sa.code != sb.code:
        return "code spans differ"
    return None
