"""GraphQL types of the servers context."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import ConflictError, NotFoundError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY
from subgraphs.servers.loaders import ServersLoaders
from subgraphs.servers.models import ServerRow

ServersInfo = Info[BeepContext[ServersLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.enum
class ServerVisibility(enum.Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


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
