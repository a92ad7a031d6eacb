"""Input types of the channels context."""

from __future__ import annotations

import strawberry

from subgraphs.channels.types import ChannelKind, OverwriteTarget


@strawberry.input
class CreateChannelInput:
    server_id: strawberry.ID
    name: str = strawberry.field(description="1-100 characters.")
    kind: ChannelKind = ChannelKind.TEXT
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="A folder of the same server."
    )


@strawberry.input
class ChannelOverwriteInput:
    channel_id: strawberry.ID
    target_kind: OverwriteTarget
    target_id: strawberry.ID = strawberry.field(
        description="A role of the server (@everyone's id is the server's) or a member."
    )
    allow: str = strawberry.field(default="0", description="Decimal bitset.")
    deny: str = strawberry.field(default="0", description="Decimal bitset.")
