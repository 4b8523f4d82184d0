"""`devloop keys create|list|revoke` and `devloop serve --team` refusing to start keyless."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.helpers import free_port
from tests.team.conftest import devloop_cli


def test_serve_team_refuses_to_start_without_keys_and_says_how_to_make_one(tmp_path: Path
                                                                          ) -> None:
    out = devloop_cli(tmp_path / "home", "serve", "--team", "--port", str(free_port()))
    assert out.returncode == 2
    assert "devloop keys create" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_create_prints_the_key_once_and_the_database_keeps_a_salted_hash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = devloop_cli(home, "keys", "create", "alice", "--budget", "5", "--period", "week",
                      "--rpm", "60", "--max-concurrent", "4")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("dlk_") and len(key) > 40 and "\n" not in key
    assert "only time" in out.stderr and key not in out.stderr
    conn = sqlite3.connect(home / "devloop.db")
    salt, stored = conn.execute("SELECT salt, key_hash FROM keys WHERE name = 'alice'").fetchone()
    conn.close()
    assert key not in stored and len(salt) == 32 and len(stored) == 64

    listing = devloop_cli(home, "keys", "list")
    assert listing.returncode == 0 and "alice" in listing.stdout and key not in listing.stdout
    assert "$5.00/week" in listing.stdout and "never" in listing.stdout
    data = json.loads(devloop_cli(home, "keys", "list", "--json").stdout)
    assert key not in json.dumps(data)
    (row,) = data
    assert {k: row[k] for k in ("name", "status", "budget_usd", "budget_period", "rpm",
                                "max_concurrent", "calls", "spend_usd", "last_used")} == {
        "name": "alice", "status": "active", "budget_usd": 5.0, "budget_period": "week",
        "rpm": 60, "max_concurrent": 4, "calls": 0, "spend_usd": 0.0, "last_used": None}
    assert row["created"].endswith("+00:00")


def test_revoke_then_list_and_mistakes_are_one_line_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert devloop_cli(home, "keys", "create", "bob").returncode == 0
    again = devloop_cli(home, "keys", "create", "bob")
    assert again.returncode == 2 and "exists" in again.stderr
    revoked = devloop_cli(home, "keys", "revoke", "bob")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "bob" not in devloop_cli(home, "keys", "list").stdout  # active keys only
    assert "revoked" in devloop_cli(home, "keys", "list", "--all").stdout
    assert json.loads(devloop_cli(home, "keys", "list", "--json").stdout)[0]["status"] == "revoked"
    for args, words in [
        (("keys", "revoke", "bob"), "no active key"),
        (("keys", "revoke", "nobody"), "no active key"),
        (("keys", "create", "two words"), "letters, digits"),
        (("keys", "create", "carol", "--period", "day"), "--budget"),
    ]:
        out = devloop_cli(home, *args)
        assert out.returncode == 2, args
        assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    bad = devloop_cli(home, "keys", "create", "carol", "--budget", "-1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert devloop_cli(home, "keys", "create", "bob").returncode == 0  # a revoked name is reusable
