"""GraphQL types of notifications. Servers, channels and messages are only pointed at (their subgraphs
resolve them, with their own access checks: a message you can no longer see reads as null)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from subgraphs.kernel.errors import NotFoundError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY, at_most, free
from subgraphs.kernel.web.pagination import PageInfo
from subgraphs.users.events import NotificationCreated
from subgraphs.users.notifications import rules, service
from subgraphs.users.notifications.loaders import Refs, Visible
from subgraphs.users.notifications.models import NotificationRow
from subgraphs.users.types import User, UsersInfo

NotificationKind = strawberry.enum(
    rules.NotificationKind,
    name="NotificationKind",
    description="Why you are notified: a MENTION of you, a REPLY to your message, an @everyone/@here "
    "(EVERYONE), any MESSAGE in a channel you follow at ALL_MESSAGES, any DIRECT_MESSAGE of the others in "
    "a direct conversation, a FRIEND_REQUEST to you (the `actor` asks; `friendRequestId` to answer it), "
    "your friend request accepted (FRIEND_ACCEPTED, by the `actor`). More kinds may come: clients should "
    "show unknown kinds generically.",
)
NotificationLevel = strawberry.enum(
    rules.NotificationLevel,
    name="NotificationLevel",
    description="HIGH: mentions, replies to you, @everyone/@here, direct messages, friend requests and "
    "acceptances. LOW: other messages you follow.",
)
NotificationSetting = strawberry.enum(
    rules.NotificationSetting,
    name="NotificationSetting",
    description="What a server, folder or channel notifies you of. NOTHING (muted): no notification at "
    "all. The default is MENTIONS_ONLY, and ALL_MESSAGES in a direct conversation.",
)


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Server:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Message:
    id: strawberry.ID


@strawberry.type(
    description="Something you were told about. Listed newest first; kept until deleted "
    "with what caused it (a deleted message takes its notifications along)."
)
class Notification:
    id: strawberry.ID
    kind: NotificationKind  # type: ignore[valid-type]
    level: NotificationLevel  # type: ignore[valid-type]
    read: bool
    created_at: datetime
    server_id: strawberry.ID | None
    channel_id: strawberry.ID | None
    message_id: strawberry.ID | None
    friend_request_id: strawberry.ID | None = strawberry.field(
        description="FRIEND_REQUEST and FRIEND_ACCEPTED: the friend request (answer a FRIEND_REQUEST with "
        "acceptFriendRequest/declineFriendRequest; a declined or cancelled request takes its "
        "notification along)."
    )
    actor_id: strawberry.Private[int | None]

    @strawberry.field(description="The server it happened in (null when you may no longer see it).")
    async def server(self, info: UsersInfo) -> Server | None:
        seen = await self._visible(info)
        return Server(id=self.server_id) if seen.server and self.server_id is not None else None

    @strawberry.field(description="The channel it happened in (null when you may no longer see it).")
    async def channel(self, info: UsersInfo) -> Channel | None:
        seen = await self._visible(info)
        return Channel(id=self.channel_id) if seen.channel and self.channel_id is not None else None

    @strawberry.field(description="The message that caused it (null once deleted or out of your sight).")
    async def message(self, info: UsersInfo) -> Message | None:
        seen = await self._visible(info)
        return Message(id=self.message_id) if seen.message and self.message_id is not None else None

    async def _visible(self, info: UsersInfo) -> Visible:
        refs = Refs(_int(self.server_id), _int(self.channel_id), _int(self.message_id))
        return await info.context.loaders.notification_refs.load(refs)

    @strawberry.field(
        description="Who caused it: the message's author, the user asking to be your friend "
        "(FRIEND_REQUEST) or who accepted your request (FRIEND_ACCEPTED). Their public profile only."
    )
    async def actor(self, info: UsersInfo) -> User | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.users.load(self.actor_id)
        return User.from_row(row) if row else None

    @classmethod
    def from_row(cls, row: NotificationRow) -> Notification:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=rules.NotificationKind(row.kind),
            level=rules.NotificationLevel(row.level),
            read=row.read,
            created_at=row.created_at,
            server_id=_id(row.server_id),
            channel_id=_id(row.channel_id),
            message_id=_id(row.message_id),
            friend_request_id=_id(row.source_id) if _about_a_friend_request(row.kind) else None,
            actor_id=row.actor_id,
        )

    @classmethod
    def from_event(cls, event: NotificationCreated) -> Notification:
        return cls(
            id=strawberry.ID(str(event.notification_id)),
            kind=rules.NotificationKind(event.kind),
            level=rules.NotificationLevel(event.level),
            read=False,
            created_at=event.created_at,
            server_id=_id(event.server_id),
            channel_id=_id(event.channel_id),
            message_id=_id(event.message_id),
            friend_request_id=_id(event.friend_request_id),
            actor_id=event.actor_id,
        )


def _about_a_friend_request(kind: str) -> bool:
    return kind in (rules.NotificationKind.FRIEND_REQUEST.value, rules.NotificationKind.FRIEND_ACCEPTED.value)


def _int(value: strawberry.ID | None) -> int | None:
    return int(value) if value is not None else None


def _id(value: int | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type(description="Unread notifications, each count stopping at 1,000.")
class NotificationCounts:
    unread: int
    unread_high: int


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo


@strawberry.type(description="How many notifications this marked read, and what is left unread.")
class NotificationsMarkedRead:
    marked: int
    counts: NotificationCounts


# The settings tree lists at most service.MAX_PREFERENCES scopes in all, read by one query: its entries
# cost nothing more to the router's estimate (`@cost(weight: 0)`), which would otherwise price servers x
# channels (1,000 x 500). What is reached through them (`server`, `channel`) is priced as usual.
SETTINGS_ROW = free()


@strawberry.type(
    description="A channel's or a folder's own setting or snooze (a folder's apply to the channels in it).",
    directives=[SETTINGS_ROW],
)
class ChannelNotificationSettings:
    channel_id: strawberry.ID
    level: NotificationSetting | None = strawberry.field(  # type: ignore[valid-type]
        description="Null: the setting of the folder the channel is in applies, else the server's."
    )
    effective_level: NotificationSetting  # type: ignore[valid-type]
    snoozed_until: datetime | None

    server_id: strawberry.Private[int]

    @strawberry.field(description="Null once you cannot see it.")
    async def channel(self, info: UsersInfo) -> Channel | None:
        seen = await info.context.loaders.notification_refs.load(
            Refs(self.server_id, int(self.channel_id), None)
        )
        return Channel(id=self.channel_id) if seen.channel else None


MAX_CHANNELS = 500  # a server's channels and folders (the channels context's rule)


@strawberry.type(directives=[SETTINGS_ROW])
class ServerNotificationSettings:
    server_id: strawberry.ID
    level: NotificationSetting | None = strawberry.field(  # type: ignore[valid-type]
        description="Null: the default applies."
    )
    effective_level: NotificationSetting  # type: ignore[valid-type]
    snoozed_until: datetime | None
    channels: list[ChannelNotificationSettings] = strawberry.field(
        description="Channels and folders of this server with their own setting or snooze.",
        directives=[at_most(MAX_CHANNELS)],
    )

    @strawberry.field(description="Null when you may not see it.")
    async def server(self, info: UsersInfo) -> Server | None:
        seen = await info.context.loaders.notification_refs.load(Refs(int(self.server_id), None, None))
        return Server(id=self.server_id) if seen.server else None


@strawberry.type(description="Your notification settings: the servers, folders and channels you configured.")
class NotificationSettings:
    default_level: NotificationSetting  # type: ignore[valid-type]
    snoozed_until: datetime | None = strawberry.field(description="Everything is snoozed until then.")
    servers: list[ServerNotificationSettings] = strawberry.field(
        directives=[at_most(service.MAX_PREFERENCES)]
    )

    @classmethod
    def of(cls, found: service.Settings) -> NotificationSettings:
        servers = []
        for server in found.servers:
            server_level = rules.effective_setting(server.level, None, direct=server.direct)
            servers.append(
                ServerNotificationSettings(
                    server_id=strawberry.ID(str(server.server_id)),
                    level=server.level,
                    effective_level=server_level,
                    snoozed_until=server.snoozed_until,
                    channels=[
                        ChannelNotificationSettings(
                            channel_id=strawberry.ID(str(c.scope_id)),
                            level=c.level,
                            effective_level=rules.effective_setting(
                                server.level, c.level, folder=c.folder_level, direct=server.direct
                            ),
                            snoozed_until=c.snoozed_until,
                            server_id=server.server_id,
                        )
                        for c in server.channels
                    ],
                )
            )
        return cls(default_level=rules.DEFAULT_SETTING, snoozed_until=found.snoozed_until, servers=servers)


@strawberry.input
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(default=None, description="At most 100.")
    all: bool = strawberry.field(default=False, description="Mark every notification read.")


@strawberry.input
class SetNotificationSettingInput:
    server_id: strawberry.ID | None = None
    channel_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A channel or a folder. A channel's setting overrides its folder's, which overrides "
        "its server's.",
    )
    level: NotificationSetting | None = strawberry.field(  # type: ignore[valid-type]
        default=None,
        description="Null: inherit (a channel its folder's setting, then the server's, then the default).",
    )


@strawberry.input
class SnoozeNotificationsInput:
    until: datetime | None = strawberry.field(
        description="When pushes resume (at most 366 days ahead; UTC if no offset). Null ends the snooze."
    )
    server_id: strawberry.ID | None = strawberry.field(default=None, description="Only this server.")
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this channel, or the channels of this folder."
    )


MarkNotificationsReadResult = Annotated[
    NotificationsMarkedRead | ValidationError, strawberry.union("MarkNotificationsReadResult")
]
NotificationSettingsResult = Annotated[
    NotificationSettings | ValidationError | NotFoundError, strawberry.union("NotificationSettingsResult")
]
