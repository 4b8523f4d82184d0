"""docs/interface-additions.md lists the public names devloop has beyond DESIGN.md.

These tests keep it from going stale both ways: every header, environment variable, error code
and ledger column it lists occurs in ``devloop/``, and every ``X-Devloop-*`` header and
``DEVLOOP_*`` variable ``devloop/`` uses is named in DESIGN.md or in the doc.
"""

from __future__ import annotations

import re
from pathlib import Path

from devloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "interface-additions.md"
# DESIGN.md lives beside the repository (README: ../shared/DESIGN.md); a worktree is one deeper.
SHARED_DESIGN = (ROOT.parent / "shared" / "DESIGN.md", ROOT.parent.parent / "shared" / "DESIGN.md")
# The copy in the repository, so these checks run in any checkout (CI's too).
DESIGN_COPY = ROOT / "docs" / "design-contract.md"
SOURCE_FILES = sorted((ROOT / "devloop").rglob("*.py"))
# Where the schema is: the migrations, the table one imports, and db.py (``_migrations``).
MIGRATION_FILES = [ROOT / "devloop" / "store" / name for name in (
    "migrations.py", "migrations_more.py", "compressions_schema.py", "db.py")]
HEADER = re.compile(r"\bX-Devloop-[A-Za-z0-9-]*[A-Za-z0-9]", re.IGNORECASE)
DEVLOOP_VAR = re.compile(r"\bDEVLOOP_[A-Z0-9_]*[A-Z0-9]")
TICKED = re.compile(r"`([^`]+)`")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def source_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in SOURCE_FILES)


def design_text() -> str:
    text = DESIGN_COPY.read_text(encoding="utf-8")
    return text[text.index("-->") + 3:].lstrip("\n")  # without the note on top


def test_the_design_copy_is_the_shared_design() -> None:
    """Where ../shared/DESIGN.md is beside the checkout, the copy must equal it."""
    shared = [p for p in SHARED_DESIGN if p.is_file()]
    if shared:
        assert design_text() == shared[0].read_text(encoding="utf-8"), (
            "docs/design-contract.md differs from ../shared/DESIGN.md: refresh the copy")
    else:  # a checkout without the shared folder (CI): the copy stands in for it
        assert "X-Devloop" in design_text()


def section_names(heading: str) -> list[str]:
    """The backticked names in the first cell of each table row under ``heading``."""
    lines = doc_text().splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith("#") and line.lstrip("#").strip() == heading]
    assert starts, f"the doc has no section {heading!r}"
    names: list[str] = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            names.extend(TICKED.findall(line.split("|")[1]))
    assert names, f"section {heading!r} lists nothing"
    return names


def setting_vars() -> set[str]:
    return {f"DEVLOOP_{name.upper()}" for name in Settings.model_fields}


def test_listed_headers_occur_in_the_source() -> None:
    source = source_text().lower()
    headers = section_names("Request headers") + section_names("Response headers")
    missing = [h for h in headers if h.lower() not in source]
    assert not missing, f"headers in the doc but not in devloop/: {missing}"


def test_listed_environment_variables_occur_in_the_source() -> None:
    source, settings = source_text(), setting_vars()
    names = section_names("Settings (environment)")
    assert "DEVLOOP_CORS_ORIGINS" in names and "DEVLOOP_EMBEDDED_PREFIX_CACHE_MB" in names
    missing = [n for n in names if n not in source and n not in settings]
    assert not missing, f"variables in the doc but neither in devloop/ nor Settings: {missing}"


def test_listed_error_codes_occur_in_the_source() -> None:
    source = source_text()
    codes = section_names("Error codes and types")
    assert {"missing_provider_key", "forbidden_field", "context_length_exceeded"} <= set(codes)
    missing = [c for c in codes if f'"{c}"' not in source]
    assert not missing, f"error codes in the doc but not in devloop/: {missing}"


def test_listed_ledger_columns_are_created_by_a_migration() -> None:
    migrations = "\n".join(p.read_text(encoding="utf-8") for p in MIGRATION_FILES)
    names = section_names("Ledger columns (table `calls`)") + section_names("Tables")
    missing = [n for n in names if not re.search(rf"[\"\s]{re.escape(n)}[\"\s]", migrations)]
    assert not missing, f"columns/tables in the doc but in no migration: {missing}"


def test_every_devloop_header_in_the_source_is_documented() -> None:
    known = (design_text() + doc_text()).lower()
    used = {h.lower() for h in HEADER.findall(source_text())}
    assert "x-devloop-ignored" in used
    undocumented = sorted(h for h in used if h not in known)
    assert not undocumented, f"X-Devloop headers in neither DESIGN.md nor the doc: {undocumented}"


def test_every_devloop_variable_in_the_source_is_documented() -> None:
    known = set(DEVLOOP_VAR.findall(design_text() + doc_text()))
    used = set(DEVLOOP_VAR.findall(source_text())) | setting_vars()
    undocumented = sorted(used - known)
    assert not undocumented, f"DEVLOOP_ variables in neither DESIGN.md nor the doc: {undocumented}"


def test_every_module_path_the_doc_names_exists() -> None:
    paths = {m for m in TICKED.findall(doc_text()) if m.startswith("devloop/")}
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"module paths in the doc that do not exist: {missing}"
