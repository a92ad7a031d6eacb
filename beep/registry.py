"""Every subgraph this distribution ships, by name (the order is the port order in full mode)."""

from __future__ import annotations

from importlib import import_module

from subgraphs.kernel.settings import SUBGRAPH_NAMES
from subgraphs.kernel.web.app import SubgraphDefinition


def definition(name: str) -> SubgraphDefinition:
    if name not in SUBGRAPH_NAMES:
        raise KeyError(f"unknown subgraph {name!r}; known: {', '.join(SUBGRAPH_NAMES)}")
    found: SubgraphDefinition = import_module(f"subgraphs.{name}.app").definition
    return found


def all_definitions() -> list[SubgraphDefinition]:
    return [definition(name) for name in SUBGRAPH_NAMES]


def default_port(name: str, base: int = 4101) -> int:
    return base + SUBGRAPH_NAMES.index(name)
