"""Where SQL lives (docs/architecture-boundaries.md): a context's `service.py` orchestrates and its
`schema.py`, `live.py` and `types.py` resolve and stream; none of them builds a statement. Statements
live in `repository.py` or in the feature module that owns the rule. Read from the source, so a
statement written in the wrong place fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NO_SQL = ("service.py", "schema.py", "live.py", "types.py")
BUILDERS = {"select", "insert", "update", "delete", "text", "union", "union_all", "exists"}


def statements_built(source: str) -> list[int]:
    """Lines that build a SQLAlchemy statement: `sa.select(...)`, `sqlalchemy.insert(...)`, or a builder
    imported from sqlalchemy and called (`from sqlalchemy import select`)."""
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        for alias in node.names
        if alias.name in BUILDERS
    }
    modules = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "sqlalchemy"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in imported) or (
            isinstance(func, ast.Attribute)
            and func.attr in BUILDERS
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        ):
            lines.append(node.lineno)
    return lines


def test_the_check_sees_every_form() -> None:
    source = (
        "import sqlalchemy as sa\nfrom sqlalchemy import select as s, func\n"
        "a = sa.select(1)\nb = s(2)\nc = func.count()\nd = other.select(3)\n"
    )
    assert statements_built(source) == [3, 4]


def test_orchestration_and_resolvers_build_no_statement() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "subgraphs").glob("*/*.py"))
        if path.name in NO_SQL and path.parent.name != "kernel"
        for line in statements_built(path.read_text())
    }
    assert not offenders, f"statements outside repositories and feature modules: {sorted(offenders)}"
