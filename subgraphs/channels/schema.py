"""The channels subgraph: text, voice and folder channels."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from subgraphs.channels import live, overwrites, service, visibility
from subgraphs.channels.inputs import (
    ChannelOverwriteInput,
    CreateChannelInput,
    MoveChannelInput,
    SetChannelVisibilityInput,
    UpdateChannelInput,
)
from subgraphs.channels.types import (
    Channel,
    ChannelDeleted,
    ChannelMemberEvent,
    ChannelResult,
    ChannelsInfo,
    CreateChannelResult,
    DeleteChannelResult,
    OverwriteTarget,
    Server,
)
from subgraphs.channels.voice_schema import VoiceMutation, VoiceQuery, VoiceSubscription
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    TEXT_CODES,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    error_types,
)
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy import attachment_files
from subgraphs.kernel.tenancy.permissions import IsAuthenticated, parse_permissions
from subgraphs.kernel.web import ratelimit, streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, signed_in_mutation
from subgraphs.kernel.web.subgraph_schema import subgraph_schema


@strawberry.type
class Query(VoiceQuery):
    @strawberry.field(description="A channel you can view; null otherwise.")
    async def channel(self, info: ChannelsInfo, id: strawberry.ID) -> Channel | None:
        row = await info.context.loaders.visible_channels.load(id_argument(str(id), "id"))
        return Channel.from_row(row) if row else None


@strawberry.type
class Mutation(VoiceMutation):
    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_PARENT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Create a channel (Manage Channels)."
    )
    async def create_channel(self, info: ChannelsInfo, input: CreateChannelInput) -> CreateChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.CREATE_CHANNEL, principal.user_id)
            data = service.NewChannel(
                server_id=id_input(str(input.server_id), "serverId"),
                name=input.name,
                kind=input.kind.value,
                parent_id=id_input(str(input.parent_id), "parentId") if input.parent_id is not None else None,
            )
            return Channel.from_row(await service.create_channel(ctx.uow, principal, data))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        *TEXT_CODES, ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Rename a channel or set its topic (Manage Channels in it).",
    )
    async def update_channel(self, info: ChannelsInfo, input: UpdateChannelInput) -> ChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            changes = service.ChannelChanges(name=input.name, topic=input.topic)
            row = await service.update_channel(ctx.uow, principal, id_input(str(input.id), "id"), changes)
            return Channel.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_PARENT,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Reorder a channel or move it into or out of a folder (Manage Channels in it and in the "
        "folder). Siblings keep dense positions.",
    )
    async def move_channel(self, info: ChannelsInfo, input: MoveChannelInput) -> ChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            parent_id = id_input(str(input.parent_id), "parentId") if input.parent_id is not None else None
            row = await service.move_channel(
                ctx.uow, principal, id_input(str(input.id), "id"), parent_id, input.position
            )
            return Channel.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete a channel and its messages; a folder's channels go with it (Manage Channels in "
        "each).",
    )
    async def delete_channel(self, info: ChannelsInfo, id: strawberry.ID) -> DeleteChannelResult:
        purges: list[int] = []

        async def operation(ctx: BeepContext[Any], principal: Principal) -> ChannelDeleted:
            deleted = await service.delete_channel(ctx.uow, principal, id_input(str(id), "id"))
            gone = [deleted.channel.id, *(child.id for child in deleted.children)]
            purges.extend(
                await attachment_files.purge_channels_later(ctx.uow, deleted.channel.server_id, gone)
            )
            return ChannelDeleted(
                channel_id=strawberry.ID(str(deleted.channel.id)),
                server_id=strawberry.ID(str(deleted.channel.server_id)),
                child_ids=[strawberry.ID(str(child.id)) for child in deleted.children],
            )

        result = await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )
        if isinstance(result, ChannelDeleted):  # committed: the channels' attachment files go too
            runtime = info.context.runtime
            await attachment_files.run_jobs(runtime.database, runtime.attachments, purges)
        return result

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
        ErrorCode.TOO_LONG,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Make a channel private (visible to the given roles and members) or public again, "
        "through VIEW_CHANNEL overwrites (Manage Roles in it).",
    )
    async def set_channel_visibility(
        self, info: ChannelsInfo, input: SetChannelVisibilityInput
    ) -> ChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            change = visibility.Visibility(
                channel_id=id_input(str(input.channel_id), "channelId"),
                private=input.private,
                role_ids=tuple(id_input(str(r), "roleIds") for r in input.role_ids or ()),
                member_ids=tuple(id_input(str(m), "memberIds") for m in input.member_ids or ()),
            )
            return Channel.from_row(await visibility.set_visibility(ctx.uow, principal, change))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_PERMISSIONS,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Allow or deny permissions in a channel for a role or a member (Manage Roles).",
    )
    async def set_channel_overwrite(self, info: ChannelsInfo, input: ChannelOverwriteInput) -> ChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            spec = overwrites.OverwriteSpec(
                channel_id=id_input(str(input.channel_id), "channelId"),
                target_kind=input.target_kind.value,
                target_id=id_input(str(input.target_id), "targetId"),
                allow=parse_permissions(input.allow, "allow"),
                deny=parse_permissions(input.deny, "deny"),
            )
            return Channel.from_row(await overwrites.set_overwrite(ctx.uow, principal, spec))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Remove a role's or member's overwrite (Manage Roles).",
    )
    async def remove_channel_overwrite(
        self,
        info: ChannelsInfo,
        channel_id: strawberry.ID,
        target_kind: OverwriteTarget,
        target_id: strawberry.ID,
    ) -> ChannelResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Channel:
            row = await overwrites.remove_overwrite(
                ctx.uow,
                principal,
                id_input(str(channel_id), "channelId"),
                target_kind.value,
                id_input(str(target_id), "targetId"),
            )
            return Channel.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )


@strawberry.type
class Subscription(VoiceSubscription):
    # As messageEvents: no permission_classes (the router would mask their error); errors are raised
    # inside the stream, where their codes reach the client.
    @strawberry.subscription(
        description="Live changes of a channel's member list (see ChannelMemberEvent). Ends with FORBIDDEN "
        "if you can no longer view the channel, NOT_FOUND if it is deleted."
    )
    @own_operation
    async def channel_member_events(
        self, info: ChannelsInfo, channel_id: strawberry.ID
    ) -> AsyncGenerator[ChannelMemberEvent, None]:
        ctx = info.context
        ctx.require_principal()
        stream = await live.member_stream(ctx, id_argument(str(channel_id), "channelId"))
        async for event in streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal):
            yield event


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Channel, Server, ChannelDeleted],
)
