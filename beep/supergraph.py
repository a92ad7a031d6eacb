"""The API contract: each subgraph's SDL exported from code, composed into the supergraph by the router's
composition library (@theguild/federation-composition). Both are committed; `check` fails when stale."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from beep.registry import all_definitions
from beep.router import ROOT, ROUTER_DIR, ensure_router_installed, router_node

SDL_DIR = ROOT / "supergraph" / "subgraphs"


def subgraph_sdls() -> dict[str, str]:
    return {d.name: d.schema.as_str().rstrip() + "\n" for d in all_definitions()}


def export() -> list[Path]:
    SDL_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, sdl in subgraph_sdls().items():
        path = SDL_DIR / f"{name}.graphql"
        path.write_text(sdl)
        written.append(path)
    return written


def _compose(*extra: str) -> int:
    ensure_router_installed()
    return subprocess.run([router_node(), str(ROUTER_DIR / "compose.mjs"), *extra], cwd=ROOT).returncode


def compose() -> int:
    export()
    return _compose()


def check() -> int:
    """Exit status 1 when a committed SDL differs from the code, or the supergraph from composition."""
    stale = 0
    for name, sdl in subgraph_sdls().items():
        path = SDL_DIR / f"{name}.graphql"
        committed = path.read_text() if path.exists() else ""
        if committed != sdl:
            stale += 1
            sys.stderr.writelines(
                difflib.unified_diff(
                    committed.splitlines(True), sdl.splitlines(True), f"{path} (committed)", f"{name} (code)"
                )
            )
    if stale:
        print(
            f"{stale} subgraph SDL(s) are stale: run `beep supergraph compose` and commit.", file=sys.stderr
        )
        return 1
    return _compose("--check")
