"""The friends subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.friends.loaders import build_loaders
from subgraphs.friends.schema import schema
from subgraphs.kernel.app import SubgraphDefinition

definition = SubgraphDefinition("friends", schema, build_loaders)
