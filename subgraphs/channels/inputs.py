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


@strawberry.input
class UpdateChannelInput:
    id: strawberry.ID
    name: str | None = strawberry.field(default=None, description="1-100 characters; omitted: unchanged.")
    topic: str | None = strawberry.field(
        default=None,
        description="Up to 1,024 characters (not for folders); empty clears it; omitted: unchanged.",
    )


@strawberry.input
class MoveChannelInput:
    id: strawberry.ID
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The folder to put it in; null for the top level. Folders stay top level."
    )
    position: int = strawberry.field(
        description="Its place among the channels of that parent, from 0 (first) to their count (last)."
    )


@strawberry.input
class SetChannelVisibilityInput:
    channel_id: strawberry.ID
    private: bool = strawberry.field(
        description="Private: hidden from @everyone, visible to exactly the roles and members given (and to "
        "administrators). Public: visible to @everyone again."
    )
    role_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Private only: roles that may see it (up to 250)."
    )
    member_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Private only: members that may see it (up to 100)."
    )
