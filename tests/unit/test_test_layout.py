"""Tests share helpers through helper modules (flows, *_flows, harness, deploy/chart), never each other:
a test file imported by another runs its module-level code twice and hides where a helper lives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]
TEST_IMPORT = re.compile(
    r"^\s*(?:from tests(?:\.\w+)*\.test_\w+ import|import tests(?:\.\w+)*\.test_\w+)", re.M
)


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}: {match.group(0).strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        for match in TEST_IMPORT.finditer(path.read_text())
    ]
    assert not offenders, "move the shared helper into a helper module:\n" + "\n".join(offenders)
