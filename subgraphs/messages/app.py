"""The messages subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.kernel.app import SubgraphDefinition
from subgraphs.messages.loaders import build_loaders
from subgraphs.messages.schema import schema

definition = SubgraphDefinition("messages", schema, build_loaders)
