"""GraphQL types of the channels context."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.channels import members, voice_service
from subgraphs.channels.loaders import ChannelsLoaders
from subgraphs.channels.models import ChannelRow, OverwriteRow
from subgraphs.channels.service import MAX_CHANNELS
from subgraphs.channels.voice_types import VoiceState
from subgraphs.kernel.errors import ForbiddenError, NotFoundError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY, VIEWER_DEPENDENT, at_most, page_of
from subgraphs.kernel.tenancy.permission_flags import FLAG_LIST, FLAGS_DESCRIPTION, PermissionFlag, flags_of
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.pagination import PageInfo, decode_cursor, encode_cursor, page_info, page_size

ChannelsInfo = Info[BeepContext[ChannelsLoaders], None]

# List bounds for the router's cost estimate (kernel/federation.py). Overwrites are not capped by a rule:
# one per role (at most 250) and a member's own, assumed at 500 in all. A call holds at most 100 people
# (BEEP_VOICE_ROOM_LIMIT's ceiling).
MAX_OVERWRITES = 500
MAX_ROOM = 100


@strawberry.enum
class ChannelKind(enum.Enum):
    TEXT = "TEXT"
    VOICE = "VOICE"
    FOLDER = "FOLDER"


@strawberry.enum
class OverwriteTarget(enum.Enum):
    ROLE = "ROLE"
    MEMBER = "MEMBER"


@strawberry.type(description="Permissions allowed and denied in one channel for one role or member.")
class PermissionOverwrite:
    target_kind: OverwriteTarget
    target_id: strawberry.ID
    allow: str = strawberry.field(description="Decimal bitset; by name: allowFlags.")
    deny: str = strawberry.field(description="Decimal bitset; by name: denyFlags.")

    @strawberry.field(description=FLAGS_DESCRIPTION, directives=[FLAG_LIST])
    def allow_flags(self) -> list[PermissionFlag]:
        return flags_of(int(self.allow))

    @strawberry.field(description=FLAGS_DESCRIPTION, directives=[FLAG_LIST])
    def deny_flags(self) -> list[PermissionFlag]:
        return flags_of(int(self.deny))

    @classmethod
    def from_row(cls, row: OverwriteRow) -> PermissionOverwrite:
        return cls(
            target_kind=OverwriteTarget(row.target_kind),
            target_id=strawberry.ID(str(row.target_id)),
            allow=str(row.allow),
            deny=str(row.deny),
        )


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.type(description="A member who can view the channel.")
class ChannelMember:
    user_id: strawberry.Private[int]

    @strawberry.field
    def user(self) -> User:
        return User(id=strawberry.ID(str(self.user_id)))


@strawberry.type
class ChannelMemberEdge:
    cursor: str
    node: ChannelMember


@strawberry.type
class ChannelMemberConnection:
    edges: list[ChannelMemberEdge]
    page_info: PageInfo


MemberListChangeType = strawberry.enum(members.MemberListChange, name="MemberListChange")


@strawberry.type(
    description="A change of a channel's member list: someone can view it now (ADDED) or no longer "
    "(REMOVED), their presence changed (PRESENCE), or many may have changed at once (RESYNC: reload "
    "`Channel.members`)."
)
class ChannelMemberEvent:
    change: MemberListChangeType  # type: ignore[valid-type]
    connected: bool | None = strawberry.field(description="PRESENCE: whether they are connected.")
    status: str | None = strawberry.field(description="PRESENCE: the status they chose.")
    user_id: strawberry.Private[int | None]

    @strawberry.field(description="Whom it concerns; null for RESYNC.")
    def user(self) -> User | None:
        return User(id=strawberry.ID(str(self.user_id))) if self.user_id is not None else None


@strawberry.federation.type(keys=["id"], description="A text, voice or folder channel of a server.")
class Channel:
    id: strawberry.ID
    name: str = strawberry.federation.field(shareable=True)  # messages provides it with a message's channel
    topic: str | None = strawberry.field(description="What the channel is about (text and voice channels).")
    kind: ChannelKind
    position: int = strawberry.field(
        description="Order among its siblings (the top level or its folder), from 0."
    )
    created_at: datetime
    permissions_synced: bool = strawberry.field(
        description="In a folder: whether the folder's overwrites apply."
    )
    server_id: strawberry.Private[int]
    parent_id: strawberry.Private[int | None]

    @strawberry.field(
        directives=VIEWER_DEPENDENT,
        description="Your permissions in this channel as a decimal bitset; by name: myPermissionFlags.",
    )
    async def my_permissions(self, info: ChannelsInfo) -> str:
        found = await info.context.loaders.channel_access.load(int(self.id))
        return str(int(found.permissions)) if found else "0"

    @strawberry.field(directives=[*VIEWER_DEPENDENT, FLAG_LIST], description=FLAGS_DESCRIPTION)
    async def my_permission_flags(self, info: ChannelsInfo) -> list[PermissionFlag]:
        found = await info.context.loaders.channel_access.load(int(self.id))
        return flags_of(int(found.permissions)) if found else []

    @strawberry.field(
        description="This channel's own overwrites (for those with Manage Roles; else empty).",
        directives=[at_most(MAX_OVERWRITES)],
    )
    async def overwrites(self, info: ChannelsInfo) -> list[PermissionOverwrite]:
        found = await info.context.loaders.channel_access.load(int(self.id))
        if found is None or not found.has(Permission.MANAGE_ROLES):
            return []
        rows = await info.context.loaders.overwrites.load(int(self.id))
        return [PermissionOverwrite.from_row(row) for row in rows]

    @strawberry.field
    def server(self) -> Server:
        return Server(id=strawberry.ID(str(self.server_id)))

    @strawberry.field(description="The folder this channel sits in.")
    async def parent(self, info: ChannelsInfo) -> Channel | None:
        if self.parent_id is None:
            return None
        row = await info.context.loaders.visible_channels.load(self.parent_id)
        return Channel.from_row(row) if row else None

    @strawberry.field(
        description="A folder's channels you can view, in order (empty for other kinds).",
        directives=[at_most(MAX_CHANNELS)],
    )
    async def children(self, info: ChannelsInfo) -> list[Channel]:
        if self.kind is not ChannelKind.FOLDER:
            return []
        rows = await info.context.loaders.server_channels.load(self.server_id)
        return [Channel.from_row(row) for row in rows if row.parent_id == int(self.id)]

    @strawberry.field(
        description="Who is in this voice channel's call now (empty for other kinds and when there is no "
        "call): what a channel list shows under it. Follow it live with `voiceStateEvents`.",
        directives=[at_most(MAX_ROOM)],
    )
    async def voice_states(self, info: ChannelsInfo) -> list[VoiceState]:
        if self.kind is not ChannelKind.VOICE:
            return []

        found = await info.context.loaders.channel_access.load(int(self.id))  # batched over a list
        if found is None or not found.can_view:
            return []
        states = await voice_service.current_states(info.context.runtime, int(self.id))
        return [VoiceState.of(state) for state in states]

    @strawberry.field(
        description="The members who can view this channel, by user id, in pages. Each one's connection "
        "status is on the user (`user { connectionStatus status }`). Follow changes with "
        "`channelMemberEvents`.",
        directives=[page_of("first")],
    )
    async def members(
        self, info: ChannelsInfo, first: int | None = 100, after: str | None = None
    ) -> ChannelMemberConnection:
        ctx = info.context
        page = await members.list_members(
            ctx.uow,
            ctx.user_id,
            int(self.id),
            first=page_size(first, default=100),
            after_user_id=decode_cursor(after, "after") if after else 0,
        )
        found = page or members.MemberPage([], has_next=False)
        edges = [
            ChannelMemberEdge(cursor=encode_cursor(user_id), node=ChannelMember(user_id=user_id))
            for user_id in found.user_ids
        ]
        return ChannelMemberConnection(
            edges=edges,
            page_info=page_info(
                [edge.cursor for edge in edges],
                has_next_page=found.has_next,
                has_previous_page=after is not None,
            ),
        )

    @classmethod
    def from_row(cls, row: ChannelRow) -> Channel:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            topic=row.topic,
            kind=ChannelKind(row.kind),
            position=row.position,
            created_at=row.created_at,
            permissions_synced=row.permissions_synced,
            server_id=row.server_id,
            parent_id=row.parent_id,
        )

    @classmethod
    async def resolve_reference(cls, info: ChannelsInfo, id: strawberry.ID) -> Channel | None:
        channel_id = parse_id(str(id))
        row = await info.context.loaders.visible_channels.load(channel_id) if channel_id else None
        return cls.from_row(row) if row else None


@strawberry.federation.type(keys=["id"])
class Server:
    id: strawberry.ID

    @strawberry.field(
        description="The channels of the server you can view, in display order: each folder followed by its "
        "channels (members only).",
        directives=[at_most(MAX_CHANNELS)],
    )
    async def channels(self, info: ChannelsInfo) -> list[Channel]:
        rows = await info.context.loaders.server_channels.load(int(self.id))
        return [Channel.from_row(row) for row in rows]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Server:
        return cls(id=id)


ChannelResult = Annotated[
    Channel | ValidationError | NotFoundError | ForbiddenError, strawberry.union("ChannelResult")
]
CreateChannelResult = Annotated[
    Channel | ValidationError | NotFoundError | ForbiddenError, strawberry.union("CreateChannelResult")
]


@strawberry.type(description="A channel was deleted, with its messages (and a folder's channels).")
class ChannelDeleted:
    channel_id: strawberry.ID
    server_id: strawberry.ID
    child_ids: list[strawberry.ID] = strawberry.field(
        description="A folder's channels, deleted with it.", directives=[at_most(MAX_CHANNELS)]
    )


DeleteChannelResult = Annotated[
    ChannelDeleted | ValidationError | NotFoundError | ForbiddenError,
    strawberry.union("DeleteChannelResult"),
]
