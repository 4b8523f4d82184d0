"""Checks before the first model call: provider credentials.

A missing key is found here, before anything is spent or retried, and named: "no API key for
anthropic/claude-sonnet-4-6: set ANTHROPIC_API_KEY". Models reached through an
OpenAI-compatible ``api_base`` (devloop itself, vLLM, a loopback server) need no key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devloop.evals.runner import Plan


def _models(plan: Plan) -> list[tuple[str, str | None]]:
    from devloop.evals.assertions import grader_model, needs_grader

    out = [(plan.model, plan.api_base)]
    kinds: set[str] = set()
    for item in plan.to_run:
        kinds |= needs_grader(item.case.assertions)
        stack = list(item.case.assertions)
        while stack:
            a = stack.pop()
            stack.extend(a.children or [])
            if a.base_type in ("llm-rubric", "similar") and (pinned := grader_model(a)):
                out.append((pinned, plan.api_base))
    if "llm-rubric" in kinds:
        out.append((plan.judge_model, plan.api_base))
    if "similar" in kinds:
        out.append((plan.embedding_model, plan.api_base))
    return out


def missing_key(model: str, api_base: str | None) -> str | None:
    """The environment variable ``model`` needs and lacks, or None."""
    if api_base and model.startswith(("openai/", "hosted_vllm/", "ollama", "ollama_chat/")):
        return None  # a local OpenAI-compatible server: devloop sends a placeholder key
    from devloop.evals.client import import_litellm

    litellm = import_litellm()
    try:
        env = litellm.validate_environment(model=model, api_base=api_base)
    except Exception:  # noqa: BLE001 - an unknown provider: let the call say what is wrong
        return None
    missing = [k for k in env.get("missing_keys") or [] if not os.environ.get(k)]
    return missing[0] if missing else None


def credential_problems(plans: list[Plan]) -> list[str]:
    """One line per model whose key is missing (empty: all set)."""
    seen: set[str] = set()
    problems = []
    for plan in plans:
        if not plan.to_run:
            continue
        for model, api_base in _models(plan):
            if model in seen:
                continue
            seen.add(model)
            key = missing_key(model, api_base)
            if key:
                problems.append(f"no API key for {model}: set {key} (or pass --api-base for "
                                "an OpenAI-compatible server); nothing was called")
    return problems
