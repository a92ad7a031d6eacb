"""The servers subgraph: servers (tenants) and membership."""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema

from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.permissions import IsAuthenticated
from subgraphs.servers import service
from subgraphs.servers.inputs import CreateServerInput
from subgraphs.servers.types import (
    CreateServerResult,
    JoinServerResult,
    Server,
    ServersInfo,
    User,
    visible_server,
)


@strawberry.type
class Query:
    @strawberry.field(
        description="A server you can see (public, or one you are a member of); null otherwise."
    )
    async def server(self, info: ServersInfo, id: strawberry.ID) -> Server | None:
        return await visible_server(info, id_argument(str(id), "id"))


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Create a server; you own it.")
    async def create_server(self, info: ServersInfo, input: CreateServerInput) -> CreateServerResult:
        ctx = info.context
        principal = ctx.require_principal()
        data = service.NewServer(input.name, input.visibility.value, input.description)

        async def operation() -> Server:
            row = await service.create_server(ctx.uow, principal, data, ctx.runtime.settings.logical_shards)
            return Server.from_row(row)

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Join a public server.")
    async def join_server(self, info: ServersInfo, server_id: strawberry.ID) -> JoinServerResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Server:
            row = await service.join_server(ctx.uow, principal, id_input(str(server_id), "serverId"))
            return Server.from_row(row)

        return await run_in_transaction(ctx.uow, operation)


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[Server, User, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
