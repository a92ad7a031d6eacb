"""GraphQL types of the messages context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from db.ids import parse_id
from media.attachments import MAX_FILES
from media.previews.metadata import Preview
from media.previews.providers import MAX_LINKS
from subgraphs.kernel.errors import ForbiddenError, NotFoundError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY, VIEWER_DEPENDENT, at_most
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.pagination import PageInfo, encode_cursor
from subgraphs.messages import embeds, markdown, mentions, service
from subgraphs.messages.attachment_types import Attachment
from subgraphs.messages.embed_types import Embed, WebhookAuthor
from subgraphs.messages.events import MessageCreated as MessageCreatedEvent
from subgraphs.messages.events import MessageUpdated as MessageUpdatedEvent
from subgraphs.messages.loaders import MessagesLoaders
from subgraphs.messages.models import MessageRow
from subgraphs.messages.reactions import MAX_DISTINCT_EMOJI
from subgraphs.messages.read_states import ChannelReadState

MessagesInfo = Info[BeepContext[MessagesLoaders], None]

# List bounds for the router's cost estimate (kernel/federation.py). Edits are not capped: a message's
# history is assumed to hold at most 100. A message of 4,000 characters holds fewer than 200 channel
# tokens (`<#id>`, an id being 18 digits or more).
MAX_EDITS = 100
MAX_CHANNEL_MENTIONS = 200


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID
    # Owned by users; this subgraph answers it only where a field says `@provides` (a message's author,
    # who typed, who reacted): the directory read below instead of an `_entities` call to the users
    # subgraph for every message sent and every live event (the send path's profile, bench/README.md).
    username: str = strawberry.federation.field(external=True, default="")


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID
    name: str = strawberry.federation.field(external=True, default="")  # as User.username, for `channel`


def _selects(info: MessagesInfo, name: str) -> bool:
    """Whether the field being resolved selects `name`, directly or through fragments."""

    def within(selections: list[Selection]) -> bool:
        return any(
            s.name == name if isinstance(s, SelectedField) else within(s.selections) for s in selections
        )

    return any(within(field.selections) for field in info.selected_fields)


async def provided_user(info: MessagesInfo, user_id: int, known: str | None = None) -> User | None:
    """A user with the fields this subgraph provides, read only when asked for (`author { id }` costs
    nothing) and not `known` already (as a send read it); None for a user that no longer exists (as the
    users subgraph answers their reference)."""
    if not _selects(info, "username"):
        return User(id=strawberry.ID(str(user_id)))
    if known is not None:
        return User(id=strawberry.ID(str(user_id)), username=known)
    username = await info.context.loaders.usernames.load(user_id)
    return None if username is None else User(id=strawberry.ID(str(user_id)), username=username)


async def existing_user(info: MessagesInfo, user_id: int) -> User:
    """Someone who just acted (reacted, typed): they exist, as they did when the users subgraph answered."""
    found = await provided_user(info, user_id)
    if found is None:
        raise LookupError(f"user {user_id} is gone")
    return found


async def provided_channel(info: MessagesInfo, channel_id: int, known: str | None = None) -> Channel:
    """A message's own channel, which its reader may view (they read the message). It has a name as long as
    it has messages: deleting a channel deletes them in the same transaction."""
    if not _selects(info, "name"):
        return Channel(id=strawberry.ID(str(channel_id)))
    name = known if known is not None else await info.context.loaders.own_channel_names.load(channel_id)
    if name is None:
        raise LookupError(f"channel {channel_id} of a readable message is missing")
    return Channel(id=strawberry.ID(str(channel_id)), name=name)


@strawberry.type(description="One emoji on a message: how many reacted with it, and whether you did.")
class Reaction:
    emoji: str
    count: int
    me: bool = strawberry.field(directives=VIEWER_DEPENDENT)


@strawberry.type(description="A message's text before one of its edits.")
class MessageEdit:
    content: str
    replaced_at: datetime = strawberry.field(description="When this text was replaced by the next.")


@strawberry.type(description="A link's preview, fetched after the message was sent.")
class LinkPreview:
    url: str
    kind: str = strawberry.field(description="link, video, rich or photo (oEmbed's types).")
    title: str | None
    description: str | None
    site_name: str | None
    image_url: str | None = strawberry.field(description="The page's image (load it through your own proxy).")
    provider: str | None = strawberry.field(description="YouTube, Spotify or Twitter when from oEmbed.")
    author_name: str | None

    @classmethod
    def from_preview(cls, p: Preview) -> LinkPreview:
        return cls(
            url=p.url,
            kind=p.kind,
            title=p.title,
            description=p.description,
            site_name=p.site_name,
            image_url=p.image_url,
            provider=p.provider,
            author_name=p.author_name,
        )


@strawberry.federation.type(keys=["id"], description="A message in a text channel.")
class Message:
    id: strawberry.ID
    content: str = strawberry.field(description="The raw text (Markdown), up to 4,000 characters.")
    created_at: datetime
    edited_at: datetime | None
    author_id: strawberry.Private[int]

    @strawberry.field(
        description="The content as sanitised HTML: CommonMark with ~~strikethrough~~, ||spoilers|| and "
        "code blocks; raw HTML shown as text; only http(s) and mailto links; images as links."
    )
    async def html(self, info: MessagesInfo) -> str:
        loaders = info.context.loaders
        user_ids, channel_ids = (
            mentions.mentioned_user_ids(self.content),
            mentions.mentioned_channel_ids(self.content),
        )
        names = dict(zip(user_ids, await loaders.usernames.load_many(user_ids), strict=True))
        channels = dict(zip(channel_ids, await loaders.channel_names.load_many(channel_ids), strict=True))

        def label(kind: str, id_: int) -> str | None:
            if kind == "user":
                return f"@{names[id_]}" if names.get(id_) else None
            if kind == "channel":
                return f"#{channels[id_]}" if channels.get(id_) else None
            return None

        return markdown.to_html(self.content, label)

    @strawberry.field(
        description="Members this message pings (resolved when it was sent or edited); a user who no "
        "longer exists is left out.",
        directives=[at_most(mentions.MAX_USER_MENTIONS)],
    )
    async def mentions(self, info: MessagesInfo) -> list[User]:
        # Only ids that resolve: one the users subgraph cannot answer would be a null in a non-null list
        # and fail the whole page around this message.
        ids = mentions.mentioned_user_ids(self.content)
        names = await info.context.loaders.usernames.load_many(ids)
        return [User(id=strawberry.ID(str(i))) for i, name in zip(ids, names, strict=True) if name]

    @strawberry.field(
        directives=[*VIEWER_DEPENDENT, at_most(MAX_CHANNEL_MENTIONS)],
        description="Channels of the server this message links to that you can see (a deleted or hidden "
        "one is left out; `html` shows it as #deleted-channel).",
    )
    async def mentioned_channels(self, info: MessagesInfo) -> list[Channel]:
        ids = mentions.mentioned_channel_ids(self.content)
        names = await info.context.loaders.channel_names.load_many(ids)
        return [Channel(id=strawberry.ID(str(i))) for i, name in zip(ids, names, strict=True) if name]

    mentions_everyone: bool = strawberry.field(
        default=False, description="Whether it pings everyone (@everyone or @here, by someone allowed to)."
    )

    channel_id: strawberry.Private[int]
    reply_to_id: strawberry.Private[int | None]
    pinned_at: datetime | None = strawberry.field(
        default=None, description="When it was pinned; null if not."
    )
    # Posted by a webhook: its id, the name and avatar shown, the embeds (JSON).
    webhook_id: strawberry.Private[int | None] = None
    author_name: strawberry.Private[str | None] = None
    author_avatar_url: strawberry.Private[str | None] = None
    embeds_json: strawberry.Private[str | None] = None
    # Names the send read (its answer, its live event): `author` and `channel` need no read of their own.
    known_username: strawberry.Private[str | None] = None
    known_channel_name: strawberry.Private[str | None] = None

    @strawberry.field(
        description="The webhook that posted it (name and avatar as shown); null for a member's."
    )
    def webhook(self) -> WebhookAuthor | None:
        if self.webhook_id is None:
            return None
        return WebhookAuthor(
            id=strawberry.ID(str(self.webhook_id)),
            name=self.author_name or "",
            avatar_url=self.author_avatar_url,
        )

    @strawberry.field(
        description="Rich embeds (webhook messages; at most 10).", directives=[at_most(embeds.MAX_EMBEDS)]
    )
    def embeds(self) -> list[Embed]:
        return [Embed.from_stored(e) for e in embeds.load(self.embeds_json)]

    @strawberry.field(
        description="Each emoji reacted with, in the order first used, with its count.",
        directives=[at_most(MAX_DISTINCT_EMOJI)],
    )
    async def reactions(self, info: MessagesInfo) -> list[Reaction]:
        found = await info.context.loaders.reactions.load(int(self.id))
        return [Reaction(emoji=r.emoji, count=r.count, me=r.me) for r in found]

    @strawberry.field(
        directives=[*VIEWER_DEPENDENT, at_most(MAX_EDITS)],
        description="Earlier versions of the text, oldest first: for members with Manage Messages in the "
        "channel (null for anyone else).",
    )
    async def edit_history(self, info: MessagesInfo) -> list[MessageEdit] | None:
        if self.edited_at is None:
            return [] if await info.context.loaders.visible_messages.load(int(self.id)) else None
        row = await info.context.loaders.visible_messages.load(int(self.id))
        if row is None:
            return None
        edits = await service.edit_history(info.context.uow, info.context.user_id, row)
        return (
            None
            if edits is None
            else [MessageEdit(content=e.content, replaced_at=e.edited_at) for e in edits]
        )

    @strawberry.field(
        description="Its files, in the order sent (short-lived download URLs).",
        directives=[at_most(MAX_FILES)],
    )
    async def attachments(self, info: MessagesInfo) -> list[Attachment]:
        loaders = info.context.loaders
        if await loaders.visible_messages.load(int(self.id)) is None:
            return []
        return [Attachment.from_row(row) for row in await loaders.attachments.load(int(self.id))]

    @strawberry.federation.field(
        provides=["username"], description="Who wrote it; null for a webhook's message (see `webhook`)."
    )
    async def author(self, info: MessagesInfo) -> User | None:
        if self.webhook_id is not None:
            return None
        return await provided_user(info, self.author_id, self.known_username)

    @strawberry.field(
        directives=VIEWER_DEPENDENT,
        description="Whether you blocked its author (friends context): clients collapse such messages, as "
        "Discord's \"blocked message\". Always false for a webhook's message and when signed out.",
    )
    async def author_blocked(self, info: MessagesInfo) -> bool:
        if self.webhook_id is not None:
            return False
        return await info.context.loaders.author_blocked.load(self.author_id)

    @strawberry.federation.field(provides=["name"])
    async def channel(self, info: MessagesInfo) -> Channel:
        return await provided_channel(info, self.channel_id, self.known_channel_name)

    @strawberry.field(description="Opaque cursor of this message, for paging and resuming.")
    def cursor(self) -> str:
        return encode_cursor(int(self.id))

    @strawberry.field(description="The message this one replies to; null if it was deleted.")
    async def reply_to(self, info: MessagesInfo) -> Message | None:
        if self.reply_to_id is None:
            return None
        row = await info.context.loaders.visible_messages.load(self.reply_to_id)
        return Message.from_row(row) if row else None

    suppress_embeds: bool = strawberry.field(default=False, description="Its link previews are hidden.")

    @strawberry.field(
        description="Previews of the links in it (up to 5), once fetched; none if suppressed.",
        directives=[at_most(MAX_LINKS)],
    )
    async def link_previews(self, info: MessagesInfo) -> list[LinkPreview]:
        found = await info.context.loaders.link_previews.load(int(self.id))
        return [LinkPreview.from_preview(p) for p in found]

    @strawberry.field(description="Whether this message replies to another (even a deleted one).")
    def is_reply(self) -> bool:
        return self.reply_to_id is not None

    @classmethod
    def from_row(cls, row: MessageRow) -> Message:
        return cls(
            id=strawberry.ID(str(row.id)),
            content=row.content,
            created_at=row.created_at,
            edited_at=row.edited_at,
            author_id=row.author_id,
            channel_id=row.channel_id,
            reply_to_id=row.reply_to_id,
            pinned_at=row.pinned_at,
            mentions_everyone=row.mention_everyone,
            suppress_embeds=row.suppress_embeds,
            webhook_id=row.webhook_id,
            author_name=row.author_name,
            author_avatar_url=row.author_avatar_url,
            embeds_json=row.embeds,
        )

    @classmethod
    def from_event(cls, event: MessageCreatedEvent | MessageUpdatedEvent) -> Message:
        return cls(
            id=strawberry.ID(str(event.message_id)),
            content=event.content,
            created_at=event.created_at,
            edited_at=getattr(event, "edited_at", None),
            author_id=event.author_id,
            channel_id=event.channel_id,
            reply_to_id=event.reply_to_id,
            mentions_everyone=event.mention_everyone,
            webhook_id=getattr(event, "webhook_id", None),
            author_name=getattr(event, "author_name", None),
            author_avatar_url=getattr(event, "author_avatar_url", None),
            embeds_json=getattr(event, "embeds", None),
            known_username=getattr(event, "author_username", None),
            known_channel_name=getattr(event, "channel_name", None),
        )

    @classmethod
    def from_sent(cls, sent: service.SentMessage) -> Message:
        found = cls.from_row(sent.row)
        found.known_username, found.known_channel_name = sent.author_username, sent.channel_name
        return found

    @classmethod
    async def resolve_reference(cls, info: MessagesInfo, id: strawberry.ID) -> Message | None:
        message_id = parse_id(str(id))
        row = await info.context.loaders.visible_messages.load(message_id) if message_id else None
        return cls.from_row(row) if row else None


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type(description="A page of a channel's history, newest first.")
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo
    event_cursor: str | None = strawberry.field(
        default=None,
        description="Subscribe to `messageEvents(after:)` with this to miss nothing that happened after this "
        "page was read (a message may then arrive that the page already holds: match them by id).",
    )


@strawberry.type(description="A message was sent.")
class MessageCreated:
    message: Message
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )


@strawberry.type(description="A message was edited.")
class MessageUpdated:
    message: Message
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )


@strawberry.type(description="A message was deleted.")
class MessageDeleted:
    message_id: strawberry.ID
    channel_id: strawberry.ID
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )


@strawberry.type(description="Someone added or removed a reaction.")
class ReactionChanged:
    message_id: strawberry.ID
    emoji: str
    added: bool
    user_id: strawberry.Private[int]
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )

    @strawberry.federation.field(provides=["username"])
    async def user(self, info: MessagesInfo) -> User:
        return await existing_user(info, self.user_id)


@strawberry.type(description="Someone is typing; show it until `expiresAt` or their next message.")
class TypingEvent:
    expires_at: datetime
    user_id: strawberry.Private[int]
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )

    @strawberry.federation.field(provides=["username"])
    async def user(self, info: MessagesInfo) -> User:
        return await existing_user(info, self.user_id)


@strawberry.type(description="Where you stopped reading a channel, and what came since.")
class ReadState:
    channel_id: strawberry.ID
    last_read_message_id: strawberry.ID | None
    unread_count: int = strawberry.field(description="Messages by others since; counted up to 1,000.")
    mention_count: int = strawberry.field(description="Of those, the ones that ping you (or everyone).")

    @strawberry.field
    def channel(self) -> Channel:
        return Channel(id=self.channel_id)

    @classmethod
    def from_state(cls, state: ChannelReadState) -> ReadState:
        last = state.last_read_id
        return cls(
            channel_id=strawberry.ID(str(state.channel_id)),
            last_read_message_id=strawberry.ID(str(last)) if last is not None else None,
            unread_count=state.unread_count,
            mention_count=state.mention_count,
        )


@strawberry.type(description="You are shown as typing until `expiresAt`.")
class Typing:
    expires_at: datetime


@strawberry.type(description="A message was pinned or unpinned.")
class PinChanged:
    message_id: strawberry.ID
    pinned: bool
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )


@strawberry.type(description="Messages deleted at once by a moderator.")
class MessagesDeleted:
    message_ids: list[strawberry.ID] = strawberry.field(directives=[at_most(service.MAX_BULK_DELETE)])
    channel_id: strawberry.ID


@strawberry.type(description="A message's link previews arrived or changed (the full new list).")
class MessageLinkPreviewsUpdated:
    message_id: strawberry.ID
    link_previews: list[LinkPreview] = strawberry.field(directives=[at_most(MAX_LINKS)])
    cursor: str | None = strawberry.field(
        default=None, description="Resume `messageEvents` from here (`after`); null for ephemeral events."
    )


MessageEvent = Annotated[
    MessageCreated
    | MessageUpdated
    | MessageDeleted
    | ReactionChanged
    | PinChanged
    | MessageLinkPreviewsUpdated
    | TypingEvent,
    strawberry.union("MessageEvent"),
]
ReadStateResult = Annotated[ReadState | ValidationError | NotFoundError, strawberry.union("ReadStateResult")]
TypingResult = Annotated[
    Typing | ValidationError | NotFoundError | ForbiddenError, strawberry.union("TypingResult")
]
ReactionResult = Annotated[
    Message | ValidationError | NotFoundError | ForbiddenError, strawberry.union("ReactionResult")
]
PinResult = Annotated[
    Message | ValidationError | NotFoundError | ForbiddenError, strawberry.union("PinResult")
]
BulkDeleteResult = Annotated[
    MessagesDeleted | ValidationError | NotFoundError | ForbiddenError, strawberry.union("BulkDeleteResult")
]
SuppressEmbedsResult = Annotated[
    Message | ValidationError | NotFoundError | ForbiddenError, strawberry.union("SuppressEmbedsResult")
]
SendMessageResult = Annotated[
    Message | ValidationError | NotFoundError | ForbiddenError, strawberry.union("SendMessageResult")
]
EditMessageResult = Annotated[
    Message | ValidationError | NotFoundError | ForbiddenError, strawberry.union("EditMessageResult")
]
DeleteMessageResult = Annotated[
    MessageDeleted | NotFoundError | ForbiddenError | ValidationError,
    strawberry.union("DeleteMessageResult"),
]
