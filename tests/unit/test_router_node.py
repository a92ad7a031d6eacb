"""Which Node runs the router: the runtime router/package.json pins when npm installed it, else the
system's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beep import router


def test_the_pinned_node_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = tmp_path / "node_modules" / ".bin" / "node"
    pinned.parent.mkdir(parents=True)
    pinned.write_text("")
    monkeypatch.setattr(router, "ROUTER_DIR", tmp_path)
    monkeypatch.setattr(router.shutil, "which", lambda name: "/usr/bin/node")
    assert router.router_node() == str(pinned)


def test_the_system_node_where_none_was_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "ROUTER_DIR", tmp_path)  # e.g. macOS: npm installed no node-linux-*
    monkeypatch.setattr(router.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    assert router.router_node() == "/usr/bin/node"


def test_no_node_at_all_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "ROUTER_DIR", tmp_path)
    monkeypatch.setattr(router.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match=r"Node\.js 20 or newer"):
        router.router_node()


def test_this_checkout_pins_a_node_the_router_dependencies_accept() -> None:
    """package.json pins the same version for every platform it lists, and it is one the router's
    dependencies declare support for (>= 22.15)."""
    manifest = json.loads((Path(router.ROUTER_DIR) / "package.json").read_text())
    versions = set(manifest["optionalDependencies"].values())
    assert len(versions) == 1, versions
    major, minor, _patch = (int(part) for part in versions.pop().split("."))
    assert (major, minor) >= (22, 15)
