"""Reorders that keep a prompt's meaning: move the smallest unit holding a fast-changing
value to the end of its message, grouped slowest first (per day, per session, per call),
never out of a container (see structure.py), never across messages. Units that cannot move
are reported with the reason; a value written more than once gets a "refer to one place"
suggestion. Pure functions over templates.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from devloop.evals.evalset import PLACEHOLDER
from devloop.pipeline.rates import RATE_ORDER
from devloop.pipeline.structure import Unit, containers, moved_text, remove_spans, unit_at

# A value is worth moving when about 64 tokens or more of slower-changing text follow it.
MIN_SLOWER_AFTER_CHARS = 256


@dataclass(frozen=True, slots=True)
class Dyn:
    """One dynamic span in a message template."""

    message: int
    start: int
    end: int
    rate: str
    text: str
    var: str | None = None


@dataclass(slots=True)
class Plan:
    templates: list[dict[str, str]]
    moved: list[tuple[Dyn, Unit]] = field(default_factory=list)
    stuck: list[tuple[Dyn, Unit]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.moved)


def _slower_after(dyn: Dyn, dyns: list[Dyn], content: str, unit_end: int) -> bool:
    """Is there enough text after the unit that changes more slowly than its value?"""
    rest = content[unit_end:]
    later = sorted((d for d in dyns if d.message == dyn.message and d.start >= unit_end
                    and RATE_ORDER[d.rate] >= RATE_ORDER[dyn.rate]), key=lambda d: -d.start)
    for d in later:
        rest = rest[:d.start - unit_end] + rest[d.end - unit_end:]
    return len(re.sub(r"\s+", " ", rest).strip()) >= MIN_SLOWER_AFTER_CHARS


def refer_to_one_place(templates: list[dict[str, str]], dyns: list[Dyn]
                       ) -> tuple[list[dict[str, str]], list[Dyn], dict[str, str]]:
    """A value written in a movable ``Label: {{x}}`` line and again inside a container (a
    list, a tool definition) is kept in the label line only; inside the container it becomes
    "the <label> given at the end of this prompt". Returns the templates, their dynamic spans
    and {var: the wording used}."""
    labels: dict[str, str] = {}
    for d in dyns:
        if d.var is None:
            continue
        content = templates[d.message]["content"]
        unit = unit_at(content, d.start, d.end, containers(content), d.message == 0)
        line = content[unit.start:unit.end]
        if unit.movable and unit.kind == "line" and line.strip().endswith(d.text) \
                and ":" in line:
            label = line.split(":", 1)[0].strip().lstrip("#-* ").lower()
            if 0 < len(label.split()) <= 4:
                labels.setdefault(d.var, f"the {label} given at the end of this prompt")
    out = [dict(t) for t in templates]
    used: dict[str, str] = {}
    kept: list[Dyn] = []
    for i, t in enumerate(templates):
        content = t["content"]
        conts = containers(content)
        cuts = []
        for d in (x for x in dyns if x.message == i):
            inside = d.var in labels and any(c.start <= d.start < c.end for c in conts)
            if inside:
                cuts.append(d)
                used[d.var or ""] = labels[d.var or ""]
            else:
                kept.append(d)
        for d in sorted(cuts, key=lambda x: -x.start):
            content = content[:d.start] + labels[d.var or ""] + content[d.end:]
        out[i]["content"] = content
    if not used:
        return templates, dyns, {}
    return out, _respan(out, kept), used


def _respan(templates: list[dict[str, str]], kept: list[Dyn]) -> list[Dyn]:
    """Spans of ``kept`` values located again in rewritten templates (in order)."""
    out: list[Dyn] = []
    for i, t in enumerate(templates):
        pos = 0
        for d in sorted((x for x in kept if x.message == i), key=lambda x: x.start):
            at = t["content"].find(d.text, pos)
            if at < 0:
                continue
            out.append(Dyn(i, at, at + len(d.text), d.rate, d.text, d.var))
            pos = at + len(d.text)
    return out


def plan_reorder(templates: list[dict[str, str]], dyns: list[Dyn]) -> Plan:
    """Move every movable unit whose value changes faster than text after it."""
    out = [dict(t) for t in templates]
    plan = Plan(out)
    for i, t in enumerate(templates):
        content = t["content"]
        conts = containers(content)
        mine = [d for d in dyns if d.message == i and d.rate != "per_deployment"]
        picked: dict[tuple[int, int], tuple[Unit, str]] = {}
        for d in sorted(mine, key=lambda d: d.start):
            unit = unit_at(content, d.start, d.end, conts, first_sentence=(i == 0 and
                                                                          t["role"] == "system"))
            if not _slower_after(d, dyns, content, unit.end):
                continue
            if not unit.movable:
                plan.stuck.append((d, unit))
                continue
            key = (unit.start, unit.end)
            prev = picked.get(key)
            # A unit with two values moves with the faster one.
            if prev is None or RATE_ORDER[d.rate] > RATE_ORDER[prev[1]]:
                picked[key] = (unit, d.rate)
            plan.moved.append((d, unit))
        if not picked:
            continue
        units = sorted(picked.values(), key=lambda u: u[0].start)
        # Drop units nested in a bigger picked unit.
        units = [u for u in units if not any(o[0].start <= u[0].start and u[0].end <= o[0].end
                                             and o is not u for o in units)]
        body = remove_spans(content, [(u.start, u.end, u.replacement) for u, _ in units])
        trailing = content[len(content.rstrip()):] or ""
        groups: list[str] = []
        for rate in ("per_day", "per_session", "per_call"):
            lines = [moved_text(content, u) for u, r in units if r == rate]
            if lines:
                groups.append("\n".join(lines))
        out[i]["content"] = body.rstrip() + "\n\n" + "\n\n".join(groups) + trailing
    return plan


def repeated_values(templates: list[dict[str, str]]) -> dict[str, int]:
    """Placeholders written more than once across the prompt."""
    counts: dict[str, int] = {}
    for t in templates:
        for m in PLACEHOLDER.finditer(t["content"]):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return {k: v for k, v in counts.items() if v > 1}


def placeholders(templates: list[dict[str, str]]) -> set[str]:
    """The variables a prompt renders (a suggestion must render the same ones)."""
    return {m.group(1) for t in templates for m in PLACEHOLDER.finditer(t["content"])}


def unified_diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True),
                                        fromfile=f"{name} (now)", tofile=f"{name} (suggested)",
                                        n=1))


class _BlockDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str)


def dump_prompt(prompt: dict[str, Any]) -> str:
    """A prompt as the `prompt:` block of an eval set file, multi-line text as blocks."""
    return yaml.dump({"prompt": prompt}, Dumper=_BlockDumper, sort_keys=False,
                     allow_unicode=True, width=100)
