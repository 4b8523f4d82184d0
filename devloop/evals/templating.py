"""Nunjucks templates (promptfoo's template language) rendered with Jinja2.

promptfoo renders prompts, var values and assertion values with Nunjucks (autoescape off,
undefined names render as nothing). Jinja2 shares the syntax (``{{ }}``, ``{% %}``,
``{# #}``, filters with ``|``); what differs is made to match here: values print as
JavaScript prints them (``true``, ``1`` for 1.0, nothing for null, ``[object Object]`` for a
mapping, ``a,b`` for a list), a trailing newline is kept, undefined names and their
attributes render empty, and Nunjucks's own filters (``dump``, ``nl2br``...) plus promptfoo's
``load`` exist. ``env`` is the process environment, as promptfoo exposes it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

MARKUP = re.compile(r"\{\{|\{%|\{#")


def js_str(value: Any) -> str:
    """``String(value)`` in JavaScript, for values that came from YAML or JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, list | tuple):
        return ",".join("" if v is None else js_str(v) for v in value)
    return str(value)


def _dump(value: Any, spaces: int | str | None = None) -> str:
    """Nunjucks ``dump``: ``JSON.stringify(value, null, spaces)``."""
    if spaces is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    indent = spaces if isinstance(spaces, str) else int(spaces)
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _join(value: Any, separator: str = ",", attribute: Any = None) -> str:
    """Nunjucks ``join``: items printed as JavaScript prints them."""
    items = list(value)
    if attribute is not None:
        items = [v.get(attribute) if isinstance(v, Mapping) else None for v in items]
    return separator.join(js_str(v) for v in items)


def _nl2br(value: Any) -> str:
    return re.sub(r"\r\n|\n", "<br />\n", js_str(value))


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(  # noqa: S701 - prompts are text, not HTML
        autoescape=False, keep_trailing_newline=True, undefined=jinja2.ChainableUndefined,
        finalize=lambda v: "" if isinstance(v, jinja2.Undefined) else js_str(v))
    env.filters.update({"dump": _dump, "nl2br": _nl2br, "load": json.loads, "join": _join,
                        "string": js_str})
    return env


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Render a Nunjucks template; text without template markup is returned as it is."""
    if not MARKUP.search(template):
        return template
    env = environment()
    return env.from_string(template).render({"env": dict(os.environ), **variables})


def render_in_object(value: Any, variables: Mapping[str, Any]) -> Any:
    """promptfoo's renderVarsInObject: every string inside a structure is rendered."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, list):
        return [render_in_object(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: render_in_object(v, variables) for k, v in value.items()}
    return value


def variables_used(template: str) -> list[str]:
    """Names a template reads (first use first); a template that does not parse gives []."""
    if not MARKUP.search(template):
        return []
    import jinja2
    from jinja2 import meta

    try:
        names = meta.find_undeclared_variables(environment().parse(template))
    except jinja2.TemplateSyntaxError:
        return []
    names.discard("env")
    return sorted(names, key=lambda n: (template.find(n), n))


def syntax_error(template: str) -> str | None:
    """Why a template cannot be parsed, or None."""
    if not MARKUP.search(template):
        return None
    import jinja2

    try:
        environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return f"template error at line {exc.lineno}: {exc.message}"
    return None
