"""GraphQL types of the servers context."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import ConflictError, NotFoundError, PermissionError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY
from subgraphs.servers.loaders import ServersLoaders
from subgraphs.servers.models import RoleRow, ServerRow

ServersInfo = Info[BeepContext[ServersLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.enum
class ServerVisibility(enum.Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


@strawberry.type(description="A role: a named set of permissions given to members.")
class Role:
    id: strawberry.ID
    name: str
    permissions: str = strawberry.field(description="Decimal bitset (Discord's bit positions).")
    position: int = strawberry.field(description="Higher ranks above lower; @everyone is 0.")
    is_everyone: bool

    @classmethod
    def from_row(cls, row: RoleRow) -> Role:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            permissions=str(row.permissions),
            position=row.position,
            is_everyone=row.id == row.server_id,
        )


@strawberry.federation.type(keys=["id"], description="A community: a tenant with its members and channels.")
class Server:
    id: strawberry.ID
    name: str
    description: str
    visibility: ServerVisibility
    created_at: datetime
    owner_id: strawberry.Private[int]

    @strawberry.field
    def owner(self) -> User:
        return User(id=strawberry.ID(str(self.owner_id)))

    @strawberry.field(description="Whether the signed-in user is a member.")
    async def viewer_is_member(self, info: ServersInfo) -> bool:
        return await info.context.loaders.viewer_is_member.load(int(self.id))

    @strawberry.field(description="Your server-wide permissions as a decimal bitset ('0' if not a member).")
    async def my_permissions(self, info: ServersInfo) -> str:
        found = await info.context.loaders.server_access.load(int(self.id))
        return str(int(found.permissions)) if found else "0"

    @strawberry.field(description="The roles, highest first, @everyone last (members only).")
    async def roles(self, info: ServersInfo) -> list[Role]:
        if not await info.context.loaders.viewer_is_member.load(int(self.id)):
            return []
        return [Role.from_row(row) for row in await info.context.loaders.server_roles.load(int(self.id))]

    @classmethod
    def from_row(cls, row: ServerRow) -> Server:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            visibility=ServerVisibility(row.visibility),
            created_at=row.created_at,
            owner_id=row.owner_id,
        )

    @classmethod
    async def resolve_reference(cls, info: ServersInfo, id: strawberry.ID) -> Server | None:
        return await visible_server(info, parse_id(str(id)))


async def visible_server(info: ServersInfo, server_id: int | None) -> Server | None:
    """The server if the caller may see it: public ones to anyone, private ones to members only."""
    if server_id is None:
        return None
    loaders = info.context.loaders
    row = await loaders.servers.load(server_id)
    if row is None:
        return None
    if row.visibility != "PUBLIC" and not await loaders.viewer_is_member.load(server_id):
        return None
    return Server.from_row(row)


CreateServerResult = Annotated[Server | ValidationError, strawberry.union("CreateServerResult")]
JoinServerResult = Annotated[Server | NotFoundError | ConflictError, strawberry.union("JoinServerResult")]
RoleResult = Annotated[
    Role | ValidationError | NotFoundError | PermissionError, strawberry.union("RoleResult")
]
