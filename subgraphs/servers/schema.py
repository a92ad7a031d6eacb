"""The servers subgraph: servers (tenants) and membership."""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema

from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.permissions import IsAuthenticated, parse_permissions
from subgraphs.servers import roles, service
from subgraphs.servers.inputs import CreateRoleInput, CreateServerInput, MemberRoleInput, UpdateRoleInput
from subgraphs.servers.types import (
    CreateServerResult,
    JoinServerResult,
    Role,
    RoleResult,
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

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Create a role (Manage Roles).")
    async def create_role(self, info: ServersInfo, input: CreateRoleInput) -> RoleResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Role:
            server_id = id_input(str(input.server_id), "serverId")
            permissions = parse_permissions(input.permissions, "permissions")
            return Role.from_row(
                await roles.create_role(ctx.uow, principal, server_id, input.name, permissions)
            )

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Rename, re-permission or move a role (Manage Roles).",
    )
    async def update_role(self, info: ServersInfo, input: UpdateRoleInput) -> RoleResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Role:
            changes = roles.RoleChanges(
                name=input.name,
                permissions=parse_permissions(input.permissions, "permissions")
                if input.permissions
                else None,
                position=input.position,
            )
            return Role.from_row(
                await roles.update_role(ctx.uow, principal, id_input(str(input.id), "id"), changes)
            )

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Delete a role (Manage Roles).")
    async def delete_role(self, info: ServersInfo, id: strawberry.ID) -> RoleResult:
        ctx = info.context
        principal = ctx.require_principal()

        async def operation() -> Role:
            return Role.from_row(await roles.delete_role(ctx.uow, principal, id_input(str(id), "id")))

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Give a member a role (Manage Roles)."
    )
    async def assign_role(self, info: ServersInfo, input: MemberRoleInput) -> RoleResult:
        return await _set_member_role(info, input, assigned=True)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Take a role from a member (Manage Roles)."
    )
    async def unassign_role(self, info: ServersInfo, input: MemberRoleInput) -> RoleResult:
        return await _set_member_role(info, input, assigned=False)


async def _set_member_role(info: ServersInfo, input: MemberRoleInput, *, assigned: bool) -> RoleResult:
    ctx = info.context
    principal = ctx.require_principal()

    async def operation() -> Role:
        row = await roles.set_member_role(
            ctx.uow,
            principal,
            id_input(str(input.role_id), "roleId"),
            id_input(str(input.user_id), "userId"),
            assigned=assigned,
        )
        return Role.from_row(row)

    return await run_in_transaction(ctx.uow, operation)


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[Server, User, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
