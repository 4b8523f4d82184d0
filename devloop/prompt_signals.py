"""What a prompt's text shows at a glance: code, file names, task verbs.

Routing's complexity heuristics (devloop/routing/policy.py) and the semantic cache's code
guard (devloop/semantic_cache.py) both read these; neither depends on the other.
"""

from __future__ import annotations

import re

TASK_VERBS = re.compile(
    r"\b(refactor|redesign|design|architect|explain why|prove|migrate|optimi[sz]e|debug|"
    r"review|analy[sz]e|rewrite|plan)\b",
    re.IGNORECASE,
)
CODE_SIGNALS = re.compile(r"```|\bdef |\bclass |\bfunction\b|#include|=>|\bimport \w|;\s*$", re.M)
FILE_SIGNALS = re.compile(r"(?:^|\s)[\w./-]+\.(?:py|ts|js|go|rs|java|c|cpp|h|rb|md|toml|yaml)\b")


def has_code(text: str) -> bool:
    return bool(CODE_SIGNALS.search(text))
