"""The channels subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.channels.loaders import build_loaders
from subgraphs.channels.schema import schema
from subgraphs.channels.voice_service import check_voice_settings, internal_routes
from subgraphs.kernel.app import SubgraphDefinition

definition = SubgraphDefinition(
    "channels", schema, build_loaders, extra_routes=internal_routes, check_settings=check_voice_settings
)
