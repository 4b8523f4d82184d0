"""The import rules of DESIGN.md ("Layers"), as import-linter contracts in pyproject.toml.

The first test runs every contract on the package; the others prove a contract breaks when
a module breaks its rule, on a copy of the package with one offending module added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache"] + [f"--contract={c}" for c in contracts]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and " KEPT" in result.stdout


@pytest.fixture(scope="module")
def offending_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pyproject.toml and the package, plus devloop/pipeline/offender.py breaking three rules."""
    root = tmp_path_factory.mktemp("arch")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "devloop", root / "devloop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "devloop" / "pipeline" / "offender.py").write_text(
        '"""Breaks the rules on purpose."""\n'
        "import sqlite3\n\n"
        "import textual\n\n"
        "from devloop.tui import app\n"
    )
    return root


@pytest.mark.parametrize(("contract", "line"), [
    ("textual", "devloop.pipeline.offender -> textual"),
    ("sqlite", "devloop.pipeline.offender -> sqlite3"),
    ("core", "devloop.pipeline.offender -> devloop.tui"),
])
def test_a_module_breaking_a_rule_breaks_its_contract(offending_copy: Path, contract: str,
                                                     line: str) -> None:
    result = lint_imports(offending_copy, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and line in result.stdout, result.stdout


def test_an_import_cycle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    """The project's acyclic contract, pointed at a package with a cycle in it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "acyclic")
    assert contract["ancestors"] == ["devloop"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.importlinter]\nroot_package = "cyclic"\n\n[[tool.importlinter.contracts]]\n'
        f'id = "acyclic"\nname = "{contract["name"]}"\ntype = "{contract["type"]}"\n'
        'ancestors = ["cyclic"]\n')
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("from cyclic import two\n")
    (pkg / "two.py").write_text("from cyclic import one\n")

    result = lint_imports(tmp_path, "acyclic")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in cyclic" in result.stdout, result.stdout
