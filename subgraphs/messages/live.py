"""Who may receive a channel's shared `messageEvents` stream (the router's fan-out tier asks:
kernel/live_access.py): the members who can read the channel's history."""

from __future__ import annotations

from subgraphs.kernel.live_access import channel_members_holding
from subgraphs.kernel.permissions import Permission

message_events_access = channel_members_holding(
    Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY,
    lost="You no longer have access to this channel.",
)
