"""The servers subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.servers.live import server_events_access
from subgraphs.servers.loaders import build_loaders
from subgraphs.servers.schema import schema

definition = SubgraphDefinition(
    "servers", schema, build_loaders, live_access={"serverEvents": server_events_access}
)
