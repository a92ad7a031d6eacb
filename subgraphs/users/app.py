"""The users subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.kernel.app import SubgraphDefinition
from subgraphs.users.issuer import issuer_routes
from subgraphs.users.loaders import build_loaders
from subgraphs.users.schema import schema

definition = SubgraphDefinition("users", schema, build_loaders, issuer_routes)
