"""Message attachments: uploaded with the message or first on their own, then attached by id.

Files are checked and stored (media/attachments.py) *between* two transactions, never inside one (an
upload must not hold a database transaction open): the first checks the caller may attach files in the
channel (it can be seen, takes messages, and they have Send Messages and Attach Files), the second writes
the message and its attachment rows. If the second fails (an error, an exception), or finds the send a
retry of one already made with its nonce (the first send stands, with its own files), the files just
stored are deleted; otherwise a row names each file. Each step returns a typed value or the refusal that
ends the flow (see "the flows" below). Limits: 10 files per message (uploaded and attached together) and
BEEP_ATTACHMENT_MAX_BYTES (20 MiB by default) for all of them together; each file non-empty; a file
presented as an image (its declared type or its name) must be one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from db.ids import new_id
from media.attachments import MAX_FILES, Attachments, StoredAttachment, attachment_scope
from media.errors import MediaError
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import DomainError, ErrorCode, ErrorTypes, NotFound, UserError, ValidationFailed
from subgraphs.kernel.tenancy import attachment_files
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.access_checks import access_channel
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.mutations import run_in_transaction
from subgraphs.messages import service
from subgraphs.messages.models import AttachmentRow, MessageRow

T = TypeVar("T")
W = TypeVar("W")
E = TypeVar("E", bound=UserError)
MAX_PENDING_PER_USER = 20  # uploads waiting to be attached, per member and channel
FIELD = "files"


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None
    declared_type: str | None


# --- checks ----------------------------------------------------------------------------------------


async def access_to_attach(uow: UnitOfWork, principal: Principal, channel_id: int) -> ChannelAccess:
    """A text channel where the caller may send messages with files (both transactions check it)."""
    return await access_channel(
        uow,
        principal.user_id,
        channel_id,
        needs=Permission.SEND_MESSAGES | Permission.ATTACH_FILES,
        refusal="You may not attach files in this channel.",
        kinds=service.TEXT_KINDS,
        wrong_kind=service.NOT_TEXT,
    )


async def read_uploads(files: Sequence[Any], max_bytes: int) -> list[Upload]:
    """The request's files, each read at most to the limit: too many, too large or empty is refused."""
    if len(files) > MAX_FILES:
        raise ValidationFailed(
            f"At most {MAX_FILES} files per message.", code=ErrorCode.TOO_MANY_FILES, field=FIELD
        )
    uploads: list[Upload] = []
    total = 0
    for file in files:
        if not isinstance(file, UploadFile):
            raise ValidationFailed("Send the file as a GraphQL multipart upload.", field=FIELD)
        data = await file.read(max_bytes - total + 1)
        total += len(data)
        if total > max_bytes:
            raise _too_large(max_bytes)
        if not data:
            raise ValidationFailed("The file is empty.", code=ErrorCode.EMPTY_FILE, field=FIELD)
        uploads.append(Upload(data, file.filename, file.content_type))
    return uploads


def _too_large(max_bytes: int) -> ValidationFailed:
    return ValidationFailed(
        f"The files of a message may total at most {max_bytes // (1024 * 1024)} MiB.",
        code=ErrorCode.FILE_TOO_LARGE,
        field=FIELD,
    )


# --- the flows (called by the resolvers) ------------------------------------------------------------
# A flow with files runs three steps, each returning a typed value or the refusal (one of the result
# union's error types) that ends it: the channel checked in one transaction (`_attachable_channel`), the
# files stored outside any (`_store`), the rows naming them written in a second transaction that checks
# access again (`_write_or_discard`, which also holds the one rule for deleting the files again).


async def send_with_files(
    ctx: BeepContext[Any],
    principal: Principal,
    parse: Callable[[], service.NewMessage],
    pending_ids: Callable[[], list[int]],
    files: Sequence[Any],
    errors: ErrorTypes[E],
) -> MessageRow | E:
    """`sendMessage` with files and/or uploads attached by id; the payload (a Message row) or an error."""

    def channel_id() -> int:
        data = parse()  # ids parsed inside the operation: a bad one is a typed INVALID_ID
        pending_ids()
        return data.channel_id

    channel = await _attachable_channel(ctx, principal, channel_id, errors)
    if not isinstance(channel, ChannelAccess):
        return channel
    stored = await _store(ctx, channel, files, errors)
    if not isinstance(stored, list):
        return stored

    async def write() -> service.SentMessage:
        data = replace(parse(), allow_empty=True)
        max_bytes = ctx.runtime.attachments.max_bytes
        return await _write_message(ctx.uow, principal, data, pending_ids(), stored, max_bytes)

    # A retried send (its nonce named a message already sent) attached nothing: its files go.
    written = await _write_or_discard(
        ctx, stored, write, errors, keep=lambda r: isinstance(r, service.SentMessage) and not r.retried
    )
    return written.row if isinstance(written, service.SentMessage) else written


async def upload_pending(
    ctx: BeepContext[Any],
    principal: Principal,
    parse_channel: Callable[[], int],
    file: Any,
    errors: ErrorTypes[E],
) -> AttachmentRow | E:
    """`uploadAttachment`: one file stored for a message to come; its row, or an error."""
    channel = await _attachable_channel(ctx, principal, parse_channel, errors)
    if not isinstance(channel, ChannelAccess):
        return channel
    stored = await _store(ctx, channel, [file], errors)
    if not isinstance(stored, list):
        return stored

    async def write() -> AttachmentRow:
        return await _write_pending(ctx.uow, principal, parse_channel(), stored[0])

    return await _write_or_discard(ctx, stored, write, errors, keep=lambda r: isinstance(r, AttachmentRow))


@dataclass(frozen=True)
class _Deleted(Generic[T]):
    """A deletion committed, with the purge job it recorded for its messages' files ([] without any)."""

    result: T
    purge_jobs: list[int | None]


async def with_file_purge(
    ctx: BeepContext[Any],
    locate: Callable[[], int],
    message_ids: Callable[[], list[int]],
    delete: Callable[[], Awaitable[T]],
    errors: ErrorTypes[E],
) -> T | E:
    """Run a deletion of messages (`delete`, in the shard of the entity `locate` names) with a purge job
    for their attachments' files, and run the job right after the commit
    (kernel/tenancy/attachment_files.py)."""

    async def operation() -> _Deleted[T]:
        session = await ctx.uow.for_entity(locate())
        server_id, keys = await files_of_messages(session, message_ids())
        result = await delete()
        if server_id is None:
            return _Deleted(result, [])
        return _Deleted(result, [await attachment_files.purge_keys_later(ctx.uow, server_id, keys)])

    done = await run_in_transaction(ctx.uow, operation, errors)
    if not isinstance(done, _Deleted):
        return done
    await attachment_files.run_jobs(ctx.runtime.database, ctx.runtime.attachments, done.purge_jobs)
    return done.result


# --- the steps --------------------------------------------------------------------------------------


async def _attachable_channel(
    ctx: BeepContext[Any], principal: Principal, channel_id: Callable[[], int], errors: ErrorTypes[E]
) -> ChannelAccess | E:
    """The first transaction: the channel where the caller may attach files, or the refusal."""

    async def check() -> ChannelAccess:
        return await access_to_attach(ctx.uow, principal, channel_id())

    return await run_in_transaction(ctx.uow, check, errors)


async def _write_or_discard(
    ctx: BeepContext[Any],
    stored: Sequence[StoredAttachment],
    write: Callable[[], Awaitable[W]],
    errors: ErrorTypes[E],
    *,
    keep: Callable[[object], bool],
) -> W | E:
    """The second transaction, `write`. The files just stored stay only when it commits a result `keep`
    accepts (rows that name them); when it raises or its result is refused (an error, a retried send whose
    first send stands), they are deleted."""
    try:
        result = await run_in_transaction(ctx.uow, write, errors)
    except BaseException:
        await discard(ctx.runtime.attachments, stored)
        raise
    if not keep(result):
        await discard(ctx.runtime.attachments, stored)
    return result


async def _write_message(
    uow: UnitOfWork,
    principal: Principal,
    data: service.NewMessage,
    pending_ids: list[int],
    stored: Sequence[StoredAttachment],
    max_bytes: int,
) -> service.SentMessage:
    """A send's write: access again, the limits over uploads by id and files together, the message, then
    the rows naming its files (none when the nonce shows a retried send: `retried`)."""
    await access_to_attach(uow, principal, data.channel_id)
    session = await uow.for_entity(data.channel_id)
    pending = await _pending_rows(session, principal.user_id, data.channel_id, pending_ids)
    if len(pending) + len(stored) > MAX_FILES:
        raise ValidationFailed(
            f"At most {MAX_FILES} files per message.", code=ErrorCode.TOO_MANY_FILES, field=FIELD
        )
    if sum(r.size for r in pending) + sum(s.size for s in stored) > max_bytes:
        raise _too_large(max_bytes)
    sent = await service.send_message(uow, principal, data)
    message = sent.row
    if sent.retried:  # found by its nonce, or a concurrent retry won the insert: its own files stand
        return sent
    for position, row in enumerate(pending):
        row.message_id, row.position = message.id, position
    shard = await uow.shard_for(data.channel_id)
    add_rows(session, shard, message, principal.user_id, stored, start=len(pending))
    await session.flush()
    return sent


async def _write_pending(
    uow: UnitOfWork, principal: Principal, channel_id: int, file: StoredAttachment
) -> AttachmentRow:
    """An upload's write: access again, the per-member limit of uploads waiting, then its row."""
    channel = await access_to_attach(uow, principal, channel_id)
    session = await uow.for_entity(channel.channel_id)
    waiting = await session.scalar(
        sa.select(sa.func.count())
        .select_from(AttachmentRow)
        .where(
            AttachmentRow.channel_id == channel.channel_id,
            AttachmentRow.uploader_id == principal.user_id,
            AttachmentRow.message_id.is_(None),
        )
    )
    if (waiting or 0) >= MAX_PENDING_PER_USER:
        raise ValidationFailed(
            f"At most {MAX_PENDING_PER_USER} uploads may wait to be sent.",
            code=ErrorCode.LIMIT_REACHED,
            field="file",
        )
    row = AttachmentRow(
        id=new_id(await uow.shard_for(channel.channel_id)),
        message_id=None,
        channel_id=channel.channel_id,
        server_id=channel.server.server_id,
        uploader_id=principal.user_id,
        position=0,
        **_file_columns(file),
    )
    session.add(row)
    await session.flush()
    return row


async def _store(
    ctx: BeepContext[Any], channel: ChannelAccess, files: Sequence[Any], errors: ErrorTypes[E]
) -> list[StoredAttachment] | E:
    try:
        return await store_files(ctx.runtime.attachments, channel.server.server_id, channel.channel_id, files)
    except DomainError as error:
        return errors.shape(error)


async def store_files(
    files_service: Attachments, server_id: int, channel_id: int, files: Sequence[Any]
) -> list[StoredAttachment]:
    """Read, check and store a message's files in its channel's scope (`read_uploads`' limits, then
    `Attachments.store`'s checks), outside any transaction. All or nothing: when one file is refused the
    ones already stored are deleted and `ValidationFailed` (field `files`, the media code) is raised.
    Used by `sendMessage` and by webhook executions (subgraphs/webhooks/http.py)."""
    scope = attachment_scope(server_id, channel_id)
    stored: list[StoredAttachment] = []
    try:
        for upload in await read_uploads(files, files_service.max_bytes):
            stored.append(
                await files_service.store(scope, upload.data, upload.filename, upload.declared_type)
            )
    except MediaError as error:
        await discard(files_service, stored)
        code = ErrorCode.__members__.get(error.code.value, ErrorCode.INVALID_INPUT)
        raise ValidationFailed(error.message, code=code, field=FIELD) from None
    except BaseException:
        await discard(files_service, stored)
        raise
    return stored


async def discard(files_service: Attachments, stored: Sequence[StoredAttachment]) -> None:
    """Delete files stored for a message that was not written."""
    await files_service.delete(*_keys(stored))


def add_rows(
    session: AsyncSession,
    shard: int,
    message: MessageRow,
    uploader: int,
    stored: Sequence[StoredAttachment],
    start: int = 0,
) -> list[AttachmentRow]:
    """Rows naming stored files as the message's attachments, from position `start` (in the session)."""
    rows = [
        _row(new_id(shard), message, uploader, position, file)
        for position, file in enumerate(stored, start=start)
    ]
    session.add_all(rows)
    return rows


def _keys(stored: Sequence[StoredAttachment]) -> list[str | None]:
    return [key for s in stored for key in (s.key, s.thumbnail_key)]


def _file_columns(file: StoredAttachment) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "size": file.size,
        "content_type": file.content_type,
        "width": file.width,
        "height": file.height,
        "storage_key": file.key,
        "thumbnail_key": file.thumbnail_key,
        "created_at": datetime.now(UTC),
    }


def _row(
    row_id: int, message: MessageRow, uploader: int, position: int, file: StoredAttachment
) -> AttachmentRow:
    return AttachmentRow(
        id=row_id,
        message_id=message.id,
        channel_id=message.channel_id,
        server_id=message.server_id,
        uploader_id=uploader,
        position=position,
        **_file_columns(file),
    )


async def _pending_rows(
    session: AsyncSession, user_id: int, channel_id: int, ids: list[int]
) -> list[AttachmentRow]:
    """The caller's own uploads waiting in this channel, in the order given; "not found" otherwise."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    rows = {
        row.id: row
        for row in await session.scalars(
            sa.select(AttachmentRow).where(
                AttachmentRow.id.in_(wanted),
                AttachmentRow.channel_id == channel_id,
                AttachmentRow.uploader_id == user_id,
                AttachmentRow.message_id.is_(None),
            )
        )
    }
    if len(rows) != len(wanted):
        raise NotFound("No such upload waiting in this channel.", field="attachmentIds")
    return [rows[i] for i in wanted]


# --- reads ------------------------------------------------------------------------------------------


async def files_of_messages(
    session: AsyncSession, message_ids: Sequence[int]
) -> tuple[int | None, list[str | None]]:
    """The tenant and the storage keys of these messages' attachments (None, [] without any)."""
    rows = (
        await session.execute(
            sa.select(AttachmentRow.server_id, AttachmentRow.storage_key, AttachmentRow.thumbnail_key).where(
                AttachmentRow.message_id.in_(message_ids)
            )
        )
    ).all()
    if not rows:
        return None, []
    return rows[0].server_id, [key for row in rows for key in (row.storage_key, row.thumbnail_key)]


async def attachments_of(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, list[AttachmentRow]]:
    found: dict[int, list[AttachmentRow]] = {}
    rows = await session.scalars(
        sa.select(AttachmentRow)
        .where(AttachmentRow.message_id.in_(message_ids))
        .order_by(AttachmentRow.message_id, AttachmentRow.position)
    )
    for row in rows:
        assert row.message_id is not None
        found.setdefault(row.message_id, []).append(row)
    return found
