"""Rules of the messages context: who may read and write, validation, events. Never commits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from subgraphs.kernel import access, access_versions, outbox
from subgraphs.kernel.access import ChannelAccess
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events import topic_for_channel
from subgraphs.kernel.outbox import Cursor
from subgraphs.kernel.permissions import Permission
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.kernel.validation import clean_text
from subgraphs.messages import mentions, repository
from subgraphs.messages.events import MessageCreated, MessageDeleted, MessageUpdated, TypingStarted
from subgraphs.messages.models import MessageEditRow, MessageRow

MAX_CONTENT = 4000
MAX_NONCE = 64
TEXT_KINDS = ("TEXT",)


@dataclass(frozen=True)
class NewMessage:
    channel_id: int
    content: str
    reply_to_id: int | None
    nonce: str | None
    suppress_embeds: bool = False
    allow_empty: bool = False  # a message with attachments may have no text


@dataclass(frozen=True)
class SentMessage:
    """A sent message, with the names its answer and its live event show, read by the send itself (None:
    not read, e.g. a retried send's: `@provides` reads them when selected)."""

    row: MessageRow
    author_username: str | None = None
    channel_name: str | None = None


@dataclass(frozen=True)
class HistoryPage:
    rows: list[MessageRow]
    has_older: bool
    has_newer: bool
    event_cursor: Cursor | None = None  # read before the rows: resuming from it misses nothing after them


def readable(found: ChannelAccess | None) -> bool:
    """Whether this access lets its holder read the channel's messages."""
    return found is not None and found.can_view and found.has(Permission.READ_MESSAGE_HISTORY)


async def check_channel_readable(
    uow: UnitOfWork, user_id: int | None, channel_id: int
) -> ChannelAccess | None:
    """The channel's access if the user may read its history; None for missing and forbidden alike."""
    found = await access.channel_access(await uow.for_entity(channel_id), channel_id, user_id)
    return found if readable(found) else None


async def send_message(uow: UnitOfWork, principal: Principal, data: NewMessage) -> SentMessage:
    min_len = 0 if data.allow_empty else 1
    content = clean_text(data.content, "content", min_len=min_len, max_len=MAX_CONTENT, multiline=True)
    nonce = data.nonce.strip() if data.nonce else None
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE:
        raise ValidationFailed(
            f"nonce must be 1-{MAX_NONCE} characters.", code=ErrorCode.TOO_LONG, field="nonce"
        )
    # The author's current name, read once here for the answer and every live event (which carries it)
    # instead of once by each of them; first, before the shard transaction holds a connection.
    async with uow.reading_directory() as directory:
        username = await mentions.username(directory, principal.user_id)
    session = await uow.for_entity(data.channel_id)
    # One statement while the server's access version is unchanged (kernel/access_versions.py).
    target = await access_versions.channel_for_send(session, data.channel_id, principal.user_id)
    channel = target.access
    if channel is None or not channel.can_view:
        raise NotFound("No such channel.", field="channelId")
    if channel.kind not in TEXT_KINDS:
        raise ValidationFailed("Messages can only be sent to text channels.", field="channelId")
    if not channel.has(Permission.SEND_MESSAGES):
        raise PermissionDenied("You may not send messages in this channel.", field="channelId")
    resolved = await mentions.resolve(uow.directory(), session, channel, principal.user_id, content)
    if nonce is not None:
        existing = await repository.message_by_nonce(session, data.channel_id, principal.user_id, nonce)
        if existing is not None and existing.content != resolved.content:
            raise ValidationFailed(
                "This nonce was already used for a different message.",
                code=ErrorCode.NONCE_REUSED,
                field="nonce",
            )
        if existing is not None:
            return SentMessage(existing)  # a retried send: the first one stands, nothing is announced twice
    if data.reply_to_id is not None:
        replied = await repository.message_by_id(session, data.reply_to_id)
        if replied is None or replied.channel_id != data.channel_id:
            raise NotFound("The message you reply to is not in this channel.", field="replyToId")
    message = MessageRow(
        id=new_id(await uow.shard_for(data.channel_id)),
        channel_id=data.channel_id,
        server_id=channel.server.server_id,
        author_id=principal.user_id,
        content=resolved.content,
        mention_everyone=resolved.mentions_everyone,
        reply_to_id=data.reply_to_id,
        nonce=nonce,
        created_at=datetime.now(UTC),
        suppress_embeds=data.suppress_embeds,
    )
    try:
        await repository.insert_message(session, message)
    except IntegrityError:
        # The same nonce raced in from a concurrent retry and won: answer with that one. (Nothing else was
        # written in this transaction, so rolling it back loses nothing; SQLite has no usable savepoints.)
        await session.rollback()
        if nonce is not None:
            existing = await repository.message_by_nonce(session, data.channel_id, principal.user_id, nonce)
            if existing is not None:
                return SentMessage(existing)
        raise
    announce_created(uow, message, author_username=username, channel_name=target.name)
    return SentMessage(message, username, target.name)


def announce_created(
    uow: UnitOfWork,
    message: MessageRow,
    *,
    author_username: str | None = None,
    channel_name: str | None = None,
) -> None:
    """Tell the channel's readers about a new message (a member's or a webhook's), with the names the
    sender read (for live events; None: read when selected)."""
    uow.emit(
        topic_for_channel(message.channel_id),
        MessageCreated(
            message.id,
            message.channel_id,
            message.server_id,
            message.author_id,
            message.content,
            message.reply_to_id,
            message.created_at,
            message.nonce,
            message.mention_everyone,
            webhook_id=message.webhook_id,
            author_name=message.author_name,
            author_avatar_url=message.author_avatar_url,
            embeds=message.embeds,
            author_username=author_username,
            channel_name=channel_name,
        ),
    )


async def readable_message(
    uow: UnitOfWork, principal: Principal, message_id: int, field: str = "messageId"
) -> tuple[MessageRow, ChannelAccess]:
    """The message and the caller's access to its channel, if they may read it; "not found" otherwise."""
    session = await uow.for_entity(message_id)
    message = await repository.message_by_id(session, message_id)
    channel = await access.channel_access(session, message.channel_id, principal.user_id) if message else None
    if message is None or channel is None or not readable(channel):
        raise NotFound("No such message.", field=field)
    return message, channel


async def own_or_moderated(
    uow: UnitOfWork, principal: Principal, message_id: int, *, moderator_permission: Permission | None
) -> MessageRow:
    session = await uow.for_entity(message_id)
    message = await repository.message_by_id(session, message_id)
    channel = await access.channel_access(session, message.channel_id, principal.user_id) if message else None
    if message is None or channel is None or not channel.can_view:
        raise NotFound("No such message.", field="id")
    if message.author_id != principal.user_id and not (
        moderator_permission is not None and channel.has(moderator_permission)
    ):
        raise PermissionDenied("You may not change this message.", field="id")
    return message


async def edit_message(uow: UnitOfWork, principal: Principal, message_id: int, content: str) -> MessageRow:
    text = clean_text(content, "content", min_len=1, max_len=MAX_CONTENT, multiline=True)
    message = await own_or_moderated(uow, principal, message_id, moderator_permission=None)
    session = await uow.for_entity(message_id)
    channel = await access.channel_access(session, message.channel_id, principal.user_id)
    assert channel is not None  # checked by own_or_moderated
    resolved = await mentions.resolve(uow.directory(), session, channel, principal.user_id, text)
    if resolved.content == message.content:
        return message  # nothing changes, nothing is announced
    now = datetime.now(UTC)
    session.add(
        MessageEditRow(
            id=new_id(await uow.shard_for(message_id)),
            message_id=message.id,
            server_id=message.server_id,
            content=message.content,
            edited_at=now,
        )
    )
    message.content = resolved.content
    message.mention_everyone = resolved.mentions_everyone
    message.edited_at = now
    uow.emit(
        topic_for_channel(message.channel_id),
        MessageUpdated(
            message.id,
            message.channel_id,
            message.server_id,
            message.author_id,
            message.content,
            message.reply_to_id,
            message.created_at,
            message.edited_at,
            message.mention_everyone,
        ),
    )
    return message


async def delete_message(uow: UnitOfWork, principal: Principal, message_id: int) -> MessageRow:
    message = await own_or_moderated(
        uow, principal, message_id, moderator_permission=Permission.MANAGE_MESSAGES
    )
    await repository.delete_message(await uow.for_entity(message_id), message)
    uow.emit(
        topic_for_channel(message.channel_id),
        MessageDeleted(message.id, message.channel_id, message.server_id),
    )
    return message


TYPING_SECONDS = 8


async def start_typing(uow: UnitOfWork, principal: Principal, channel_id: int) -> datetime:
    """Tell the channel's readers that the caller is typing, for the next 8 seconds (clients repeat it
    while typing). Nothing is stored."""
    session = await uow.for_entity(channel_id)
    channel = (await access_versions.channel_for_send(session, channel_id, principal.user_id)).access
    if channel is None or not channel.can_view:
        raise NotFound("No such channel.", field="channelId")
    if channel.kind not in TEXT_KINDS or not channel.has(Permission.SEND_MESSAGES):
        raise PermissionDenied("You may not send messages in this channel.", field="channelId")
    expires_at = datetime.now(UTC) + timedelta(seconds=TYPING_SECONDS)
    uow.announce(
        topic_for_channel(channel_id),
        TypingStarted(channel_id, channel.server.server_id, principal.user_id, expires_at),
    )
    return expires_at


MAX_BULK_DELETE = 100


async def bulk_delete(
    uow: UnitOfWork, principal: Principal, channel_id: int, message_ids: list[int]
) -> list[int]:
    """Moderators (Manage Messages) delete up to 100 messages of one channel at once; ids that are not
    messages of this channel are ignored. Returns the ids deleted."""
    wanted = sorted(set(message_ids))
    if not 1 <= len(wanted) <= MAX_BULK_DELETE:
        raise ValidationFailed(
            f"Give 1 to {MAX_BULK_DELETE} message ids.", code=ErrorCode.LIMIT_REACHED, field="messageIds"
        )
    session = await uow.for_entity(channel_id)
    channel = await access.channel_access(session, channel_id, principal.user_id)
    if channel is None or not readable(channel):
        raise NotFound("No such channel.", field="channelId")
    if not channel.has(Permission.MANAGE_MESSAGES):
        raise PermissionDenied("You need Manage Messages in this channel.", field="channelId")
    found = [
        m for m in (await repository.messages_by_ids(session, wanted)).values() if m.channel_id == channel_id
    ]
    if found:
        await repository.delete_messages(session, [m.id for m in found])
    for message in found:
        uow.emit(
            topic_for_channel(channel_id), MessageDeleted(message.id, message.channel_id, message.server_id)
        )
    return [m.id for m in found]


async def edit_history(
    uow: UnitOfWork, user_id: int | None, message: MessageRow
) -> list[MessageEditRow] | None:
    """Earlier versions of a message, oldest first, for those with Manage Messages in its channel."""
    session = await uow.for_entity(message.id)
    channel = await access.channel_access(session, message.channel_id, user_id)
    if channel is None or not readable(channel) or not channel.has(Permission.MANAGE_MESSAGES):
        return None
    return await repository.edits_of(session, message.id)


async def history(
    uow: UnitOfWork,
    user_id: int | None,
    channel_id: int,
    *,
    before: int | None,
    after: int | None,
    limit: int,
    around: int | None = None,
) -> HistoryPage | None:
    if await check_channel_readable(uow, user_id, channel_id) is None:
        return None
    session = await uow.for_entity(channel_id)
    head = await outbox.head(session, await uow.shard_for(channel_id))  # first: the rows are at least as new
    page = await _history_rows(session, channel_id, before=before, after=after, limit=limit, around=around)
    return dataclasses.replace(page, event_cursor=head)


async def _history_rows(
    session: AsyncSession,
    channel_id: int,
    *,
    before: int | None,
    after: int | None,
    limit: int,
    around: int | None,
) -> HistoryPage:
    if around is not None:
        # Jump to a message: it with about half a page of older ones, the rest newer (newest first); near
        # either end of the history the other side fills the page.
        older = await repository.page(session, channel_id, before=around + 1, after=None, limit=limit + 1)
        newer = await repository.page(session, channel_id, before=None, after=around, limit=limit)
        n_newer = min(len(newer), limit - min(limit // 2 + 1, len(older)))
        n_older = min(len(older), limit - n_newer)
        return HistoryPage(
            (newer[-n_newer:] if n_newer else []) + older[:n_older],
            has_older=len(older) > n_older,
            has_newer=len(newer) > n_newer,
        )
    rows = await repository.page(session, channel_id, before=before, after=after, limit=limit + 1)
    extra = len(rows) > limit
    if after is not None and before is None:
        # Paging towards newer messages: the extra row is the newest one, at the front.
        rows = rows[1:] if extra else rows
        return HistoryPage(rows, has_older=True, has_newer=extra)
    rows = rows[:limit]
    return HistoryPage(rows, has_older=extra, has_newer=before is not None or after is not None)
