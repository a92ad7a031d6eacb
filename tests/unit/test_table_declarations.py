"""One declaration per table: its owner's (an ORM model, or a Table where no model fits), and at most one
light reference for the other contexts, in kernel/tenancy/directory_tables.py or
kernel/tenancy/tenant_tables.py. Read from the source, so a redeclared table fails here before it drifts from
its migration."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SHARED = {"subgraphs/kernel/tenancy/directory_tables.py", "subgraphs/kernel/tenancy/tenant_tables.py"}


def declarations() -> dict[str, list[str]]:
    """Table name -> the files that declare it (once per declaration)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted([*ROOT.glob("subgraphs/**/*.py"), *ROOT.glob("db/*.py")]):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), where)):
            name = None
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__tablename__" for t in node.targets
            ):
                name = node.value
            elif isinstance(node, ast.Call) and node.args:
                callee = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if callee in ("Table", "table"):
                    name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found[name.value].append(where)
    return found


def test_every_table_is_declared_by_its_owner_and_at_most_one_shared_reference() -> None:
    found = declarations()
    assert "users" in found and "messages" in found  # the scan sees models and references
    wrong = {}
    for table, files in found.items():
        owners = [f for f in files if f not in SHARED]
        shared = [f for f in files if f in SHARED]
        if len(owners) != 1 or len(shared) > 1:
            wrong[table] = files
    assert not wrong, f"declare each table once (its owner) and share it through kernel/*_tables.py: {wrong}"
