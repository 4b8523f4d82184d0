"""Which reader a path needs: devloop eval set files and promptfoo configs (a
``promptfooconfig.yaml``, a folder holding one, or any YAML with ``prompts`` and ``tests``).

``load_one`` is what the ladder (``devloop check``, ``watch``, the TUI) runs on: an eval set,
or the first prompt of a promptfoo config. ``load_targets`` is what ``devloop eval`` runs:
every prompt of every config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devloop.config import ConfigError
from devloop.evals.evalset import EvalSet, find_evalsets, load_evalset
from devloop.evals.promptfoo import is_promptfoo_config, load_promptfoo
from devloop.evals.yaml12 import load_yaml12


def load_all(path: str | Path) -> list[EvalSet]:
    """The eval sets in one file or promptfoo folder (one per promptfoo prompt)."""
    path = Path(path)
    if path.is_dir() or path.name.startswith("promptfooconfig"):
        return load_promptfoo(path)
    if is_promptfoo_config(path, load_yaml12(path)):
        return load_promptfoo(path)
    return [load_evalset(path)]


def load_one(path: str | Path) -> EvalSet:
    """An eval set, or the first prompt of a promptfoo config (the ladder runs on it)."""
    return load_all(path)[0]


def load_targets(paths: Sequence[str | Path]) -> list[EvalSet]:
    """Eval set files and promptfoo configs (folders expand to their YAML files)."""
    sets: list[EvalSet] = []
    for path in find_evalsets(paths):
        if path.name == "devloop.promotions.json":
            continue
        sets.extend(load_all(path))
    if not sets:
        raise ConfigError(", ".join(str(p) for p in paths), "", "no eval set files found")
    return sets
