"""The channels subgraph: text, voice and folder channels."""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema

from subgraphs.channels import service
from subgraphs.channels.inputs import CreateChannelInput
from subgraphs.channels.types import Channel, ChannelsInfo, CreateChannelResult, Server
from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.permissions import IsAuthenticated


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


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[Channel, Server, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
