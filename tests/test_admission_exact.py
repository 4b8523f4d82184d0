"""Budget scopes of every kind match names exactly (no LIKE, no case folding), `user:`
scopes exist, and a new key with a revoked key's name starts with its own spend."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from devloop.config import Profile
from devloop.gateway.admission import BudgetExceeded, Budgets, scope_applies
from devloop.store.writer import DbWriter


def budgets_for(tmp_path: Path, budgets: list[dict[str, object]]) -> Budgets:
    profile = Profile.model_validate({
        "name": "b", "production_model": "anthropic/claude-sonnet-4-5",
        "tiers": {"frontier": {"backend": "litellm", "model": "openai/x"}},
        "routes": [{"tier": "frontier"}], "budgets": budgets})
    return Budgets(profile, DbWriter(tmp_path / "devloop.db"))


def names(kind: str, name: str) -> dict[str, str | None]:
    """reserve()'s keyword arguments for a call attributed to ``name`` as ``kind``."""
    return {"feature": name if kind == "feature" else None,
            "key_id": name if kind == "key" else None,
            "user": name if kind == "user" else None}


@pytest.mark.parametrize("kind", ["feature", "key", "user"])
@pytest.mark.parametrize(("small", "other"), [("ci_1", "ci-1"), ("Chat", "chat"),
                                              ("a%b", "aXYZb")])
async def test_another_names_reservation_never_holds_this_budget(
        tmp_path: Path, kind: str, small: str, other: str) -> None:
    b = budgets_for(tmp_path, [{"scope": f"{kind}:{small}", "usd": 0.005},
                               {"scope": f"{kind}:{other}", "usd": 10.0}])
    try:
        assert await b.reserve("frontier", worst_usd=0.008, **names(kind, other)) is not None
        assert await b.reserve("frontier", worst_usd=0.004, **names(kind, small)) is not None
        with pytest.raises(BudgetExceeded):  # its own reservation does hold it
            await b.reserve("frontier", worst_usd=0.004, **names(kind, small))
    finally:
        b.writer.close()


@pytest.mark.parametrize("kind", ["feature", "key", "user"])
async def test_spend_of_a_case_variant_is_not_this_scopes_spend(tmp_path: Path,
                                                                kind: str) -> None:
    b = budgets_for(tmp_path, [{"scope": f"{kind}:Chat", "usd": 0.005}])
    column = {"feature": "feature", "key": "key_id", "user": "user"}[kind]
    try:
        await b.writer.run(lambda c: c.execute(
            f"INSERT INTO calls (ts, request_id, tier, cost_usd, {column}) "
            "VALUES (?, 'x', 'frontier', 1.0, 'chat')", (time.time(),)))
        assert await b.reserve("frontier", worst_usd=0.004, **names(kind, "Chat")) is not None
    finally:
        b.writer.close()


def test_scope_applies_exactly() -> None:
    assert scope_applies("user:ana", "frontier", None, None, "ana")
    assert not scope_applies("user:ana", "frontier", None, None, "Ana")
    assert not scope_applies("feature:ci_1", "frontier", "ci-1", None)
    assert not scope_applies("key:a%", "frontier", None, "ab")


def test_budget_scope_user_is_accepted_and_unknown_kinds_refused() -> None:
    from pydantic import ValidationError

    from devloop.config import Budget

    assert Budget(scope="user:ana", usd=1).scope == "user:ana"
    with pytest.raises(ValidationError, match="user:NAME"):
        Budget(scope="team:x", usd=1)


async def test_a_new_key_with_a_revoked_keys_name_starts_fresh(tmp_path: Path) -> None:
    b = budgets_for(tmp_path, [])
    from devloop.config import Budget

    try:
        old_spend_at = time.time()
        await b.writer.run(lambda c: c.execute(
            "INSERT INTO calls (ts, request_id, tier, cost_usd, key_id) "
            "VALUES (?, 'old', 'frontier', 0.009, 'bob')", (old_spend_at,)))
        budget = Budget(scope="key:bob", usd=0.01)
        b.set_key_limits({}, {}, {"bob": budget}, {"bob": old_spend_at - 10})
        with pytest.raises(BudgetExceeded):  # the same key: its spend counts
            await b.reserve("frontier", None, "bob", 0.002)
        b.set_key_limits({}, {}, {"bob": budget}, {"bob": old_spend_at + 1})  # re-created
        assert await b.reserve("frontier", None, "bob", 0.002) is not None
    finally:
        b.writer.close()


def test_reservations_table_lists_scopes_space_separated(tmp_path: Path) -> None:
    """A scope with a comma in its name is still one scope."""
    import asyncio

    b = budgets_for(tmp_path, [{"scope": "feature:a,b", "usd": 1.0}])
    try:
        asyncio.run(b.reserve("frontier", "a,b", None, 0.5))
        conn = sqlite3.connect(tmp_path / "devloop.db")
        (scopes,) = conn.execute("SELECT scopes FROM reservations").fetchone()
        conn.close()
        assert scopes == "feature:a,b"
    finally:
        b.writer.close()
