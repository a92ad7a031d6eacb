"""The webhooks subgraph as a deployable unit: GraphQL plus the Discord-compatible execute endpoint."""

from __future__ import annotations

from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.webhooks.http import webhook_routes
from subgraphs.webhooks.loaders import build_loaders
from subgraphs.webhooks.schema import schema

definition = SubgraphDefinition("webhooks", schema, build_loaders, extra_routes=webhook_routes)
