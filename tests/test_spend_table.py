"""`devloop spend` fits the terminal: the full table where it fits (and on a pipe), fewer and
narrower columns in a narrow one, the same `--json` at every width."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from devloop.cli import cli
from tests.tui.seed import seed_calls


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spend-home")
    seed_calls(folder / "devloop.db", 120, days=3)
    return folder


def spend(home: Path, *args: str, columns: int | None) -> str:
    env = {"DEVLOOP_HOME": str(home)}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    result = CliRunner().invoke(cli, ["spend", "--by", "feature", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_wide_terminal_and_a_pipe_get_the_full_table(home: Path) -> None:
    wide = spend(home, columns=400)
    assert wide == spend(home, columns=None)  # a pipe: nothing is cut
    header = wide.splitlines()[1]
    for title in ("tokens in", "tokens out", "would cost", "p-cache", "refused", "retries",
                  "would-cost model"):
        assert title in header
    assert max(len(line) for line in wide.splitlines()) > 160


@pytest.mark.parametrize("columns", [120, 100, 80, 60])
def test_a_narrow_terminal_gets_a_table_that_fits(home: Path, columns: int) -> None:
    out = spend(home, columns=columns)
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), [ln for ln in lines if len(ln) > columns]
    assert lines[0] == "since all; would-cost priced at anthropic/claude-sonnet-4-5"
    header = lines[1].split()
    for kept in ("calls", "spent", "saved"):  # the figures the command is for
        assert kept in header
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip()}
    total = json.loads(spend(home, "--json", columns=columns))["totals"]
    assert rows["TOTAL"][header.index("calls")] == str(total["calls"])
    if "retry" not in header:  # what was left out is named, and where to find it
        assert "retries" in out.splitlines()[-1] and "--json" in out


def test_the_lowest_value_columns_go_first(home: Path) -> None:
    at_80 = spend(home, columns=80).splitlines()[1].split()
    at_120 = spend(home, columns=120).splitlines()[1].split()
    assert "retry" not in at_80 and "refus" not in at_80
    assert {"would", "p-cache", "cache"} <= set(at_80)
    assert set(at_80) < set(at_120)


def test_json_is_the_same_at_every_width(home: Path) -> None:
    outputs = {spend(home, "--json", columns=c) for c in (None, 60, 80, 400)}
    assert len(outputs) == 1
    assert {"totals", "groups", "since"} <= set(json.loads(outputs.pop()))
