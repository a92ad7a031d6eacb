"""The channels subgraph: text, voice and folder channels."""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema

from subgraphs.channels import overwrites, service
from subgraphs.channels.inputs import ChannelOverwriteInput, CreateChannelInput
from subgraphs.channels.types import (
    Channel,
    ChannelResult,
    ChannelsInfo,
    CreateChannelResult,
    OverwriteTarget,
    Server,
)
from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.permissions import IsAuthenticated, parse_permissions


@strawberry.type
class Query:
    @strawberry.field(description="A channel you can view; null otherwise.")
    async def channel(self, info: ChannelsInfo, id: strawberry.ID) -> Channel | None:
        row = await info.context.loaders.visible_channels.load(id_argument(str(id), "id"))
        return Channel.from_row(row) if row else None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Create a channel (Manage Channels)."
    )
    async def create_channel(self, info: ChannelsInfo, input: CreateChannelInput) -> CreateChannelResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Channel:
            data = service.NewChannel(
                server_id=id_input(str(input.server_id), "serverId"),
                name=input.name,
                kind=input.kind.value,
                parent_id=id_input(str(input.parent_id), "parentId") if input.parent_id is not None else None,
            )
            return Channel.from_row(await service.create_channel(ctx.uow, principal, data))

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Allow or deny permissions in a channel for a role or a member (Manage Roles).",
    )
    async def set_channel_overwrite(self, info: ChannelsInfo, input: ChannelOverwriteInput) -> ChannelResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Channel:
            spec = overwrites.OverwriteSpec(
                channel_id=id_input(str(input.channel_id), "channelId"),
                target_kind=input.target_kind.value,
                target_id=id_input(str(input.target_id), "targetId"),
                allow=parse_permissions(input.allow, "allow"),
                deny=parse_permissions(input.deny, "deny"),
            )
            return Channel.from_row(await overwrites.set_overwrite(ctx.uow, principal, spec))

        return await run_in_transaction(ctx.uow, operation)

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
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Channel:
            row = await overwrites.remove_overwrite(
                ctx.uow,
                principal,
                id_input(str(channel_id), "channelId"),
                target_kind.value,
                id_input(str(target_id), "targetId"),
            )
            return Channel.from_row(row)

        return await run_in_transaction(ctx.uow, operation)


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[Channel, Server, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
