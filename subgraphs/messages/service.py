"""Rules of the messages context: who may read and write, validation, events. Never commits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.catalogue import topic_for_channel
from subgraphs.kernel.events.outbox import Cursor
from subgraphs.kernel.metrics import SENDS
from subgraphs.kernel.tenancy import access, access_versions
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.access_checks import (
    READ,
    VIEW,
    Need,
    access_channel,
    access_channel_to_send,
    check_channel,
    holds,
    or_none,
    refused,
    sees,
)
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork, retrying_moves
from subgraphs.kernel.web.validation import clean_text
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
    # The nonce named a message already sent (a retry, or a concurrent retry that won the insert): this
    # send wrote nothing, and what it carried (files) is not the message's.
    retried: bool = False


@dataclass(frozen=True)
class HistoryPage:
    rows: list[MessageRow]
    has_older: bool
    has_newer: bool
    event_cursor: Cursor | None = None  # read before the rows: resuming from it misses nothing after them


NOT_TEXT = "Messages can only be sent to text channels."
MAY_NOT_SEND = "You may not send messages in this channel."
NEED_MANAGE_MESSAGES = "You need Manage Messages in this channel."


async def access_message(
    uow: UnitOfWork,
    viewer: int | None,
    message_id: int,
    *,
    seen_with: Permission = READ,
    needs: Need | None = None,
    or_own: bool = False,
    refusal: str = "",
    field: str = "messageId",
    refusal_field: str | None = None,
) -> tuple[MessageRow, ChannelAccess]:
    """A message the viewer sees (its channel `seen_with`: READ by default) and may act on (`needs`, or
    being its author with `or_own`), with their access to its channel (kernel/tenancy/access_checks.py).
    "No such message." for missing and hidden alike; `refusal` for the rest."""
    session = await uow.for_entity(message_id)
    message = await repository.message_by_id(session, message_id)
    channel = await access.channel_access(session, message.channel_id, viewer) if message else None
    if message is None or channel is None or not sees(channel, seen_with):
        raise NotFound("No such message.", field=field)
    if not (holds(channel, needs) or (or_own and message.author_id == viewer)):
        raise refused(refusal, refusal_field or field)
    return message, channel


def _cleaned(data: NewMessage) -> tuple[str, str | None]:
    """The message's text and nonce, validated."""
    min_len = 0 if data.allow_empty else 1
    content = clean_text(data.content, "content", min_len=min_len, max_len=MAX_CONTENT, multiline=True)
    nonce = data.nonce.strip() if data.nonce else None
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE:
        raise ValidationFailed(
            f"nonce must be 1-{MAX_NONCE} characters.", code=ErrorCode.TOO_LONG, field="nonce"
        )
    return content, nonce


async def _author_username(uow: UnitOfWork, user_id: int) -> str | None:
    """The author's current name, read once per send for the answer and every live event (which carries
    it) instead of once by each of them; before any shard transaction holds a connection."""
    async with uow.reading_directory() as directory:
        return await mentions.username(directory, user_id)


async def send_message(
    uow: UnitOfWork, principal: Principal, data: NewMessage, *, author_username: str | None = None
) -> SentMessage:
    """Send in the caller's transaction (`uow.atomic`): the general path (every database, a send with
    files). `author_username`: already read by the caller."""
    content, nonce = _cleaned(data)
    username = author_username or await _author_username(uow, principal.user_id)
    # One statement while the server's access version is unchanged (kernel/tenancy/access_versions.py).
    channel, channel_name = await access_channel_to_send(
        uow,
        principal.user_id,
        data.channel_id,
        needs=Permission.SEND_MESSAGES,
        refusal=MAY_NOT_SEND,
        kinds=TEXT_KINDS,
        wrong_kind=NOT_TEXT,
    )
    session = await uow.for_entity(data.channel_id)
    prepared = await _prepared(uow, uow.directory(), session, principal, data, channel, content, nonce)
    if isinstance(prepared, SentMessage):
        return prepared
    message = prepared
    try:
        await repository.insert_message(session, message)
    except IntegrityError:
        # The same nonce raced in from a concurrent retry and won: answer with that one. (Nothing else was
        # written in this transaction, so rolling it back loses nothing; SQLite has no usable savepoints.)
        await session.rollback()
        if nonce is not None:
            existing = await repository.message_by_nonce(session, data.channel_id, principal.user_id, nonce)
            if existing is not None:
                return SentMessage(existing, retried=True)
        raise
    announce_created(uow, message, author_username=username, channel_name=channel_name)
    return SentMessage(message, username, channel_name)


async def send_message_now(uow: UnitOfWork, principal: Principal, data: NewMessage) -> SentMessage:
    """`sendMessage` without files, called outside any transaction. On PostgreSQL the message and its
    event are written by one statement that is its own transaction (three round trips to the database
    per send instead of six: the author's name, the access, the write), and only while what was checked
    still holds (`_send_in_one_statement`); otherwise, or when it wrote nothing, `send_message` runs in a
    transaction (retried on a tenant move), which decides every case as before."""
    content, nonce = _cleaned(data)  # invalid input is refused before anything is read
    username = await _author_username(uow, principal.user_id)
    sent = await _send_in_one_statement(uow, principal, data, content, nonce, username)
    if sent is not None:
        SENDS.labels("one_statement").inc()
        return sent
    sent = await retrying_moves(uow, lambda: send_message(uow, principal, data, author_username=username))
    SENDS.labels("transaction").inc()
    return sent


async def _send_in_one_statement(
    uow: UnitOfWork,
    principal: Principal,
    data: NewMessage,
    content: str,
    nonce: str | None,
    username: str | None,
) -> SentMessage | None:
    """The send's checks outside a transaction, then the message and its outbox row written by one
    statement that writes only while what the checks used still holds (`repository.
    insert_announced_message`). The checks first use what this process kept from this member's last send
    to the channel, reading nothing (`access_versions.kept_for_send`); when that does not permit the send
    or no longer holds, they read the channel's access and try once more. Refusals are raised as in
    `send_message`. None: not written (not PostgreSQL, access changed or the tenant moved meanwhile, a
    nonce or a deletion raced in): the caller sends in a transaction instead. `content` and `nonce`:
    `data`'s, validated."""
    shard = await uow.shard_for(data.channel_id)
    if uow.database.shard_engine(shard).dialect.name != "postgresql":
        return None  # SQLite has no INSERT inside a WITH
    async with uow.autocommitting(shard) as session:
        kept = access_versions.kept_for_send(data.channel_id, principal.user_id)
        if kept is not None:
            try:
                sent = await _write_checked(uow, session, principal, data, content, nonce, username, kept)
            except DomainError:
                sent = None  # refused by what was kept: decided by reading
            if sent is not None and not sent.retried:  # a retry is answered after a fresh check
                await uow.wrote_outbox([shard])
                return sent
            access_versions.forget_for_send(data.channel_id, principal.user_id)
        target = await access_versions.channel_for_send(session, data.channel_id, principal.user_id)
        if target.moved:
            return None  # the transaction's fenced read raises TenantMoved, and the send is retried
        sent = await _write_checked(uow, session, principal, data, content, nonce, username, target)
    if sent is not None and not sent.retried:
        await uow.wrote_outbox([shard])
    return sent


def _check_sending(target: access_versions.ChannelForSend) -> ChannelAccess:
    return check_channel(
        target.access,
        needs=Permission.SEND_MESSAGES,
        refusal=MAY_NOT_SEND,
        kinds=TEXT_KINDS,
        wrong_kind=NOT_TEXT,
    )


async def _write_checked(
    uow: UnitOfWork,
    session: AsyncSession,
    principal: Principal,
    data: NewMessage,
    content: str,
    nonce: str | None,
    username: str | None,
    target: access_versions.ChannelForSend,
) -> SentMessage | None:
    """The send checked against `target` and written by one statement while `target` holds; the message
    a nonce already names (`retried`, nothing written); None when the statement wrote nothing."""
    channel = _check_sending(target)
    async with uow.reading_directory() as directory:
        prepared = await _prepared(uow, directory, session, principal, data, channel, content, nonce)
    if isinstance(prepared, SentMessage):
        return prepared
    message = prepared
    event = created_event(message, author_username=username, channel_name=target.name)
    try:
        with uow.one_statement_transaction():
            (row,) = outbox.rows_for([(topic_for_channel(message.channel_id), event)])
            written = await repository.insert_announced_message(session, message, row, target)
    except IntegrityError:
        await session.rollback()  # the session stays usable for a send checked again
        return None
    return SentMessage(message, username, target.name) if written else None


async def _prepared(
    uow: UnitOfWork,
    directory: AsyncSession,
    session: AsyncSession,
    principal: Principal,
    data: NewMessage,
    channel: ChannelAccess,
    content: str,
    nonce: str | None,
) -> MessageRow | SentMessage:
    """The row to write for a send the viewer may make (`channel` checked), its mentions resolved; or the
    message its nonce already names (a retry: the first send stands, nothing announced twice)."""
    resolved = await mentions.resolve(directory, session, channel, principal.user_id, content)
    if nonce is not None:
        existing = await repository.message_by_nonce(session, data.channel_id, principal.user_id, nonce)
        if existing is not None and existing.content != resolved.content:
            raise ValidationFailed(
                "This nonce was already used for a different message.",
                code=ErrorCode.NONCE_REUSED,
                field="nonce",
            )
        if existing is not None:
            return SentMessage(existing, retried=True)
    if data.reply_to_id is not None:
        replied = await repository.message_by_id(session, data.reply_to_id)
        if replied is None or replied.channel_id != data.channel_id:
            raise NotFound("The message you reply to is not in this channel.", field="replyToId")
    return MessageRow(
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


def created_event(
    message: MessageRow, *, author_username: str | None = None, channel_name: str | None = None
) -> MessageCreated:
    """A new message's event, with the names the sender read (for live events; None: read when
    selected)."""
    return MessageCreated(
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
    )


def announce_created(
    uow: UnitOfWork,
    message: MessageRow,
    *,
    author_username: str | None = None,
    channel_name: str | None = None,
) -> None:
    """Tell the channel's readers about a new message (a member's or a webhook's)."""
    uow.emit(
        topic_for_channel(message.channel_id),
        created_event(message, author_username=author_username, channel_name=channel_name),
    )


async def access_message_to_change(
    uow: UnitOfWork, viewer: int, message_id: int, *, moderators: Permission | None
) -> tuple[MessageRow, ChannelAccess]:
    """`access_message` for changing a message (edit, delete, suppress its previews): its author, or a
    holder of `moderators` (None: nobody else). Seen with View Channel alone: changing one's own message
    does not need Read Message History."""
    return await access_message(
        uow,
        viewer,
        message_id,
        seen_with=VIEW,
        needs=() if moderators is None else moderators,
        or_own=True,
        refusal="You may not change this message.",
        field="id",
    )


async def edit_message(uow: UnitOfWork, principal: Principal, message_id: int, content: str) -> MessageRow:
    text = clean_text(content, "content", min_len=1, max_len=MAX_CONTENT, multiline=True)
    message, channel = await access_message_to_change(uow, principal.user_id, message_id, moderators=None)
    session = await uow.for_entity(message_id)
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
    message, _channel = await access_message_to_change(
        uow, principal.user_id, message_id, moderators=Permission.MANAGE_MESSAGES
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
    channel, _name = await access_channel_to_send(  # a channel of another kind: refused, not invalid
        uow,
        principal.user_id,
        channel_id,
        needs=Permission.SEND_MESSAGES,
        refusal=MAY_NOT_SEND,
        kinds=TEXT_KINDS,
    )
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
    await access_channel(
        uow,
        principal.user_id,
        channel_id,
        seen_with=READ,
        needs=Permission.MANAGE_MESSAGES,
        refusal=NEED_MANAGE_MESSAGES,
    )
    session = await uow.for_entity(channel_id)
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
    moderator = access_channel(
        uow,
        user_id,
        message.channel_id,
        seen_with=READ,
        needs=Permission.MANAGE_MESSAGES,
        refusal=NEED_MANAGE_MESSAGES,
    )
    if await or_none(moderator) is None:
        return None
    return await repository.edits_of(await uow.for_entity(message.id), message.id)


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
    if await or_none(access_channel(uow, user_id, channel_id, seen_with=READ)) is None:
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
