"""The friends subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.friends.loaders import build_loaders
from subgraphs.friends.schema import schema
from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.kernel.web.live_access import own_stream

definition = SubgraphDefinition("friends", schema, build_loaders, live_access={"friendEvents": own_stream})
