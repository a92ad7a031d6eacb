"""The messages subgraph: sending, history and live message events."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    TEXT_CODES,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    bad_user_input,
    error_types,
)
from subgraphs.kernel.events.outbox import Cursor
from subgraphs.kernel.federation import at_most, page_of
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.web import ratelimit, streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, signed_in_mutation
from subgraphs.kernel.web.pagination import decode_cursor, encode_cursor, page_info, page_size
from subgraphs.kernel.web.subgraph_schema import subgraph_schema
from subgraphs.messages import attachments, link_previews, live, pins, reactions, read_states, service
from subgraphs.messages.attachment_types import LIMITS, Attachment, UploadAttachmentResult
from subgraphs.messages.inputs import EditMessageInput, SendMessageInput
from subgraphs.messages.models import AttachmentRow, MessageRow
from subgraphs.messages.search.schema import SearchQuery
from subgraphs.messages.types import (
    BulkDeleteResult,
    Channel,
    DeleteMessageResult,
    EditMessageResult,
    Message,
    MessageConnection,
    MessageDeleted,
    MessageEdge,
    MessageEvent,
    MessagesDeleted,
    MessagesInfo,
    PinResult,
    ReactionResult,
    ReadState,
    ReadStateResult,
    SendMessageResult,
    SuppressEmbedsResult,
    Typing,
    TypingResult,
    User,
)

log = logging.getLogger("beep.messages")

MAX_CHANNELS = 500  # a server's channels (the channels context's rule): one read state each


@strawberry.type
class Query(SearchQuery):
    @strawberry.field(
        description="A channel's history, newest first; null if you cannot read the channel. Page with "
        "`before`/`after` (cursors); jump to a message with `around` (its cursor): the page holds it, the "
        "older half before it and the newer half after it.",
        directives=[page_of("first")],
    )
    async def messages(
        self,
        info: MessagesInfo,
        channel_id: strawberry.ID,
        before: str | None = None,
        after: str | None = None,
        first: int | None = 50,
        around: str | None = None,
    ) -> MessageConnection | None:
        ctx = info.context
        if around and (before or after):
            raise bad_user_input("'around' cannot be combined with 'before' or 'after'.", "around")
        limit = page_size(first)
        page = await service.history(
            ctx.uow,
            ctx.user_id,
            id_argument(str(channel_id), "channelId"),
            before=decode_cursor(before, "before") if before else None,
            after=decode_cursor(after, "after") if after else None,
            limit=limit,
            around=decode_cursor(around, "around") if around else None,
        )
        if page is None:
            return None
        edges = [MessageEdge(cursor=encode_cursor(r.id), node=Message.from_row(r)) for r in page.rows]
        return MessageConnection(
            edges=edges,
            page_info=page_info(
                [edge.cursor for edge in edges],
                has_next_page=page.has_older,
                has_previous_page=page.has_newer,
            ),
            event_cursor=str(page.event_cursor) if page.event_cursor is not None else None,
        )

    @strawberry.field(
        description="A channel's pinned messages (at most 50), most recently pinned first; null if you "
        "cannot read the channel.",
        directives=[at_most(pins.MAX_PINS)],
    )
    async def pins(self, info: MessagesInfo, channel_id: strawberry.ID) -> list[Message] | None:
        ctx = info.context
        rows = await pins.pins_of(ctx.uow, ctx.user_id, id_argument(str(channel_id), "channelId"))
        return None if rows is None else [Message.from_row(row) for row in rows]

    @strawberry.field(
        description="Your read state of each text channel of a server you can read (unread and mention "
        "counts); null unless you are a member.",
        directives=[at_most(MAX_CHANNELS)],
    )
    async def read_states(self, info: MessagesInfo, server_id: strawberry.ID) -> list[ReadState] | None:
        ctx = info.context
        found = await read_states.read_states(ctx.uow, ctx.user_id, id_argument(str(server_id), "serverId"))
        return None if found is None else [ReadState.from_state(state) for state in found]

    @strawberry.field(description="A message you can see; null otherwise.")
    async def message(self, info: MessagesInfo, id: strawberry.ID) -> Message | None:
        row = await info.context.loaders.visible_messages.load(id_argument(str(id), "id"))
        return Message.from_row(row) if row else None


@strawberry.type
class Mutation:
    @error_codes(
        *TEXT_CODES,
        ErrorCode.CONTENT_TYPE_MISMATCH,
        ErrorCode.EMPTY_FILE,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NONCE_REUSED,
        ErrorCode.NOT_FOUND,
        ErrorCode.TOO_MANY_FILES,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Send a message to a text channel, with files (GraphQL multipart upload: `files`) and/or "
        f"uploads attached by id (`input.attachmentIds`; Attach Files). {LIMITS} Each member may send 10 "
        "messages per 10 s to a channel by default (RATE_LIMITED with retryAfter beyond; configurable).",
    )
    async def send_message(
        self, info: MessagesInfo, input: SendMessageInput, files: list[Upload] | None = None
    ) -> SendMessageResult:
        def parse() -> service.NewMessage:
            return service.NewMessage(
                channel_id=id_input(str(input.channel_id), "channelId"),
                content=input.content,
                reply_to_id=id_input(str(input.reply_to_id), "replyToId") if input.reply_to_id else None,
                nonce=input.nonce,
                suppress_embeds=input.suppress_embeds,
            )

        # Per member and channel, counted before anything is read or stored (the raw id: a malformed one
        # fails right after, with its own error).
        principal = info.context.require_principal()
        settings = info.context.runtime.settings
        limit = ratelimit.send_message_limit(
            settings.message_send_limit, settings.message_send_window_seconds
        )
        await ratelimit.enforce(
            info.context.runtime.rate_limiter, limit, f"{principal.user_id}:{input.channel_id}"
        )

        if files or input.attachment_ids:
            ctx = info.context
            pending = input.attachment_ids or []
            result = await attachments.send_with_files(
                ctx,
                principal,
                parse,
                lambda: [id_input(str(i), "attachmentIds") for i in pending],
                files or [],
                error_types(ValidationError, NotFoundError, ForbiddenError),
            )
            return Message.from_row(result) if isinstance(result, MessageRow) else result

        async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
            return Message.from_sent(await service.send_message_now(ctx.uow, principal, parse()))

        return await signed_in_mutation(
            info,
            operation,
            error_types(ValidationError, NotFoundError, ForbiddenError),
            own_transaction=True,
        )

    @error_codes(
        ErrorCode.CONTENT_TYPE_MISMATCH,
        ErrorCode.EMPTY_FILE,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.TOO_MANY_FILES,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Upload a file for a message to come (Attach Files), then send it with "
        "`sendMessage(input: {attachmentIds})` within an hour. " + LIMITS,
    )
    async def upload_attachment(
        self, info: MessagesInfo, channel_id: strawberry.ID, file: Upload
    ) -> UploadAttachmentResult:
        ctx = info.context
        result = await attachments.upload_pending(
            ctx,
            ctx.require_principal(),
            lambda: id_input(str(channel_id), "channelId"),
            file,
            error_types(ValidationError, NotFoundError, ForbiddenError),
        )
        return Attachment.from_row(result) if isinstance(result, AttachmentRow) else result

    @error_codes(
        *TEXT_CODES, ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND
    )
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Edit one of your messages.")
    async def edit_message(self, info: MessagesInfo, input: EditMessageInput) -> EditMessageResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
            row = await service.edit_message(ctx.uow, principal, id_input(str(input.id), "id"), input.content)
            return Message.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete one of your messages, or anyone's with Manage Messages.",
    )
    async def delete_message(self, info: MessagesInfo, id: strawberry.ID) -> DeleteMessageResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> MessageDeleted:
            row = await service.delete_message(ctx.uow, principal, id_input(str(id), "id"))
            return MessageDeleted(
                message_id=strawberry.ID(str(row.id)), channel_id=strawberry.ID(str(row.channel_id))
            )

        def target() -> int:
            return id_input(str(id), "id")

        errors = error_types(NotFoundError, ForbiddenError, ValidationError)
        return await attachments.with_file_purge(ctx, target, lambda: [target()], operation, errors)

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.INVALID_ID,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="React with one unicode emoji (Add Reactions); at most 20 different emoji per message.",
    )
    async def add_reaction(self, info: MessagesInfo, message_id: strawberry.ID, emoji: str) -> ReactionResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
            target = id_input(str(message_id), "messageId")
            return Message.from_row(await reactions.add_reaction(ctx.uow, principal, target, emoji))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.INVALID_FORMAT, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Take back one of your reactions.")
    async def remove_reaction(
        self, info: MessagesInfo, message_id: strawberry.ID, emoji: str
    ) -> ReactionResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
            target = id_input(str(message_id), "messageId")
            return Message.from_row(await reactions.remove_reaction(ctx.uow, principal, target, emoji))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Pin a message (Pin Messages or Manage Messages); at most 50 per channel.",
    )
    async def pin_message(self, info: MessagesInfo, id: strawberry.ID) -> PinResult:
        return await _set_pinned(info, id, pinned=True)

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Unpin a message.")
    async def unpin_message(self, info: MessagesInfo, id: strawberry.ID) -> PinResult:
        return await _set_pinned(info, id, pinned=False)

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete up to 100 messages of a channel at once (Manage Messages). Ids that are not "
        "messages of this channel are ignored; the payload lists those deleted.",
    )
    async def bulk_delete_messages(
        self, info: MessagesInfo, channel_id: strawberry.ID, message_ids: list[strawberry.ID]
    ) -> BulkDeleteResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> MessagesDeleted:
            channel = id_input(str(channel_id), "channelId")
            ids = [id_input(str(i), "messageIds") for i in message_ids]
            deleted = await service.bulk_delete(ctx.uow, principal, channel, ids)
            return MessagesDeleted(
                message_ids=[strawberry.ID(str(i)) for i in deleted], channel_id=strawberry.ID(str(channel))
            )

        return await attachments.with_file_purge(
            ctx,
            lambda: id_input(str(channel_id), "channelId"),
            lambda: [id_input(str(i), "messageIds") for i in message_ids],
            operation,
            error_types(ValidationError, NotFoundError, ForbiddenError),
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Show the channel that you are typing (for 8 s; repeat while typing). Not stored.",
    )
    async def start_typing(self, info: MessagesInfo, channel_id: strawberry.ID) -> TypingResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Typing:
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.TYPING, principal.user_id)
            channel = id_input(str(channel_id), "channelId")
            return Typing(expires_at=await service.start_typing(ctx.uow, principal, channel))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Hide (or bring back) a message's link previews: its author, or Manage Messages.",
    )
    async def suppress_embeds(
        self, info: MessagesInfo, message_id: strawberry.ID, suppress: bool = True
    ) -> SuppressEmbedsResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
            target = id_input(str(message_id), "messageId")
            return Message.from_row(await link_previews.set_suppressed(ctx.uow, principal, target, suppress))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Mark a channel read up to a message (default: its newest). Never moves backwards.",
    )
    async def mark_read(
        self, info: MessagesInfo, channel_id: strawberry.ID, message_id: strawberry.ID | None = None
    ) -> ReadStateResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> ReadState:
            channel = id_input(str(channel_id), "channelId")
            message = id_input(str(message_id), "messageId") if message_id is not None else None
            return ReadState.from_state(await read_states.mark_read(ctx.uow, principal, channel, message))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))


async def _set_pinned(info: MessagesInfo, id: strawberry.ID, *, pinned: bool) -> PinResult:
    async def operation(ctx: BeepContext[Any], principal: Principal) -> Message:
        target = id_input(str(id), "id")
        return Message.from_row(await pins.set_pinned(ctx.uow, principal, target, pinned=pinned))

    return await signed_in_mutation(
        info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
    )


@strawberry.type
class Subscription:
    # No permission_classes here on purpose: a permission failure is a pre-execution error, sent as a
    # graphql-transport-ws `error` message, which the router masks as INTERNAL_SERVER_ERROR. Raised from
    # inside the stream, errors reach clients with their codes.
    @strawberry.subscription(
        description="Live events of a channel you can read. With `after` (an event's or a history page's "
        "`cursor`), what happened since is replayed first, then live events follow: none missed, none "
        "twice. Ends with FORBIDDEN if you lose access, CURSOR_EXPIRED if `after` is older than the event "
        "retention.",
    )
    @own_operation
    async def message_events(
        self, info: MessagesInfo, channel_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[MessageEvent, None]:
        ctx = info.context
        ctx.require_principal()
        channel = id_argument(str(channel_id), "channelId")
        cursor = Cursor.parse(after) if after is not None else None
        stream = await live.message_stream(ctx, channel, cursor)
        async for payload in streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal):
            yield payload


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Message, User, Channel, Attachment],
)
