"""The webhooks subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.kernel.app import SubgraphDefinition
from subgraphs.webhooks.loaders import build_loaders
from subgraphs.webhooks.schema import schema

definition = SubgraphDefinition("webhooks", schema, build_loaders)
