"""The channels subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.channels.loaders import build_loaders
from subgraphs.channels.schema import schema
from subgraphs.channels.voice_service import check_voice_settings, internal_routes
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.kernel.web.live_access import StateStream, channel_members_holding

VIEW_LOST = "You can no longer view this channel."

definition = SubgraphDefinition(
    "channels",
    schema,
    build_loaders,
    extra_routes=internal_routes,
    check_settings=check_voice_settings,
    live_access={
        "channelMemberEvents": channel_members_holding(Permission.VIEW_CHANNEL, lost=VIEW_LOST),
        # Each event is the call's whole state: a socket joining the shared stream starts with the last.
        "voiceStateEvents": StateStream(channel_members_holding(Permission.VIEW_CHANNEL, lost=VIEW_LOST)),
    },
)
