"""Notification resolvers, merged into the users subgraph's Query, Mutation and Subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFoundError, ValidationError, error_types
from subgraphs.kernel.events.catalogue import Event, topic_for_user
from subgraphs.kernel.events.outbox import Deduplicator
from subgraphs.kernel.federation import VIEWER_DEPENDENT, page_of
from subgraphs.kernel.ids import id_input
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.web import streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, signed_in_mutation
from subgraphs.kernel.web.pagination import MAX_PAGE, decode_cursor, encode_cursor, page_info, page_size
from subgraphs.users.events import NotificationCreated
from subgraphs.users.loaders import UsersLoaders
from subgraphs.users.notifications import rules, service
from subgraphs.users.notifications.types import (
    MarkNotificationsReadInput,
    MarkNotificationsReadResult,
    Notification,
    NotificationConnection,
    NotificationCounts,
    NotificationEdge,
    NotificationSettings,
    NotificationSettingsResult,
    NotificationsMarkedRead,
    SetNotificationSettingInput,
    SnoozeNotificationsInput,
)
from subgraphs.users.types import UsersInfo

PAGE = 50

Ctx = BeepContext[UsersLoaders]


def _optional_id(raw: strawberry.ID | None, field: str) -> int | None:
    return id_input(str(raw), field) if raw is not None else None


async def _counts(ctx: Ctx, user_id: int) -> NotificationCounts:
    unread, high = await service.unread_counts(ctx.uow, user_id)
    return NotificationCounts(unread=unread, unread_high=high)


async def _settings(ctx: Ctx, user_id: int) -> NotificationSettings:
    return NotificationSettings.of(await service.settings(ctx.uow, user_id, datetime.now(UTC)))


@strawberry.type
class NotificationQueries:
    @strawberry.field(
        description=f"Your notifications, newest first ({PAGE} per page by default, at most 100); "
        "`unreadOnly` skips the read ones.",
        permission_classes=[IsAuthenticated],
        directives=[page_of("first", otherwise=MAX_PAGE)],
    )
    async def notifications(
        self, info: UsersInfo, first: int | None = None, after: str | None = None, unread_only: bool = False
    ) -> NotificationConnection:
        principal = info.context.require_principal()
        size = page_size(first, default=PAGE)
        before_id = decode_cursor(after, "after") if after is not None else None
        rows, more = await service.page(
            info.context.uow, principal.user_id, before_id=before_id, unread_only=unread_only, size=size
        )
        edges = [NotificationEdge(cursor=encode_cursor(r.id), node=Notification.from_row(r)) for r in rows]
        return NotificationConnection(
            edges=edges,
            page_info=page_info(
                [e.cursor for e in edges], has_next_page=more, has_previous_page=before_id is not None
            ),
        )

    @strawberry.field(
        description="How many notifications you have not read.", permission_classes=[IsAuthenticated]
    )
    async def notification_counts(self, info: UsersInfo) -> NotificationCounts:
        return await _counts(info.context, info.context.require_principal().user_id)

    @strawberry.field(
        description="Your notification settings and snoozes.", permission_classes=[IsAuthenticated]
    )
    async def notification_settings(self, info: UsersInfo) -> NotificationSettings:
        return await _settings(info.context, info.context.require_principal().user_id)


@strawberry.type
class NotificationMutations:
    @error_codes(ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.REQUIRED)
    @strawberry.mutation(description="Mark some of your notifications read (`ids`, at most 100) or `all`.")
    async def mark_notifications_read(
        self, info: UsersInfo, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadResult:
        async def operation(ctx: Ctx, principal: Principal) -> NotificationsMarkedRead:
            ids = [id_input(str(i), "ids") for i in input.ids] if input.ids is not None else None
            marked = await service.mark_read(ctx.uow, principal.user_id, ids, input.all)
            return NotificationsMarkedRead(marked=marked, counts=await _counts(ctx, principal.user_id))

        return await signed_in_mutation(info, operation, error_types(ValidationError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND, ErrorCode.REQUIRED)
    @strawberry.mutation(
        description="Set what a server, folder or channel notifies you of (a channel's setting overrides "
        "its folder's, which overrides its server's); a null level inherits again."
    )
    async def set_notification_setting(
        self, info: UsersInfo, input: SetNotificationSettingInput
    ) -> NotificationSettingsResult:
        async def operation(ctx: Ctx, principal: Principal) -> NotificationSettings:
            level = rules.NotificationSetting(input.level.value) if input.level is not None else None
            await service.set_level(
                ctx.uow,
                principal.user_id,
                _optional_id(input.server_id, "serverId"),
                _optional_id(input.channel_id, "channelId"),
                level,
            )
            return await _settings(ctx, principal.user_id)

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        description="Snooze notifications until a time: everywhere, or for one server, folder or channel. "
        "While snoozed they are still stored (and counted) but not pushed live. A null `until` ends the "
        "snooze."
    )
    async def snooze_notifications(
        self, info: UsersInfo, input: SnoozeNotificationsInput
    ) -> NotificationSettingsResult:
        async def operation(ctx: Ctx, principal: Principal) -> NotificationSettings:
            await service.snooze(
                ctx.uow,
                principal.user_id,
                input.until,
                _optional_id(input.server_id, "serverId"),
                _optional_id(input.channel_id, "channelId"),
                datetime.now(UTC),
            )
            return await _settings(ctx, principal.user_id)

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))


@strawberry.type
class NotificationSubscriptions:
    # No permission_classes on purpose (as messageEvents): errors raised inside the stream keep their codes.
    @strawberry.subscription(
        directives=VIEWER_DEPENDENT,
        description="Your new notifications, live (not those held back by a snooze: list them instead).",
    )
    @own_operation
    async def notifications(self, info: UsersInfo) -> AsyncGenerator[Notification, None]:
        ctx = info.context
        user_id = ctx.require_principal().user_id
        seen = Deduplicator(None)  # the relay may publish an event twice after a crash

        def mine(event: Event) -> Notification | None:
            if isinstance(event, NotificationCreated) and event.user_id == user_id and seen.fresh(event):
                return Notification.from_event(event)
            return None

        stream = streams.LiveStream(topics=(topic_for_user(user_id),), render=streams.mapped(mine))
        following = streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal)
        async for notification in following:
            yield notification
