"""Input types of the channels context."""

from __future__ import annotations

import strawberry

from subgraphs.channels.types import ChannelKind


@strawberry.input
class CreateChannelInput:
    server_id: strawberry.ID
    name: str = strawberry.field(description="1-100 characters.")
    kind: ChannelKind = ChannelKind.TEXT
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="A folder of the same server."
    )
