"""The friends subgraph: relationships and direct conversations.

So far it serves the read side (your friends); requests, blocks and direct messages come with the friends
and direct messages issue, on this table and schema.
"""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema
from strawberry.types import Info

from subgraphs.friends import repository
from subgraphs.friends.loaders import FriendsLoaders
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.federation import REFERENCE_ONLY
from subgraphs.kernel.permissions import IsAuthenticated

FriendsInfo = Info[BeepContext[FriendsLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Your friends, most recent first.")
    async def friends(self, info: FriendsInfo) -> list[User]:
        principal = info.context.require_principal()
        ids = await repository.friend_ids(info.context.uow.directory(), principal.user_id)
        return [User(id=strawberry.ID(str(i))) for i in ids]


schema = Schema(
    query=Query,
    types=[User, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
