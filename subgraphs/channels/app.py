"""The channels subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.channels.loaders import build_loaders
from subgraphs.channels.schema import schema
from subgraphs.channels.voice_service import check_voice_settings, internal_routes
from subgraphs.kernel.app import SubgraphDefinition
from subgraphs.kernel.live_access import channel_members_holding
from subgraphs.kernel.permissions import Permission

definition = SubgraphDefinition(
    "channels",
    schema,
    build_loaders,
    extra_routes=internal_routes,
    check_settings=check_voice_settings,
    # voiceStateEvents is not shared: it starts with each subscriber's own snapshot of the call.
    live_access={
        "channelMemberEvents": channel_members_holding(
            Permission.VIEW_CHANNEL, lost="You can no longer view this channel."
        )
    },
)
