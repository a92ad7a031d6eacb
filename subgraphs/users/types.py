"""GraphQL types of the users context. `User` is the entity every other subgraph points at."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import AuthenticationError, ConflictError, ValidationError
from subgraphs.users.loaders import UsersLoaders
from subgraphs.users.models import UserRow

UsersInfo = Info[BeepContext[UsersLoaders], None]


@strawberry.federation.type(keys=["id"], description="A person using Beep.")
class User:
    id: strawberry.ID
    username: str
    first_name: str
    last_name: str
    created_at: datetime
    email_value: strawberry.Private[str]

    @strawberry.field(description="First and last name, as shown next to messages.")
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @strawberry.field(description="Your own e-mail address; null for anyone else's.")
    def email(self, info: UsersInfo) -> str | None:
        return self.email_value if info.context.user_id == int(self.id) else None

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            username=row.username,
            first_name=row.first_name,
            last_name=row.last_name,
            created_at=row.created_at,
            email_value=row.email,
        )

    @classmethod
    async def resolve_reference(cls, info: UsersInfo, id: strawberry.ID) -> User | None:
        user_id = parse_id(str(id))
        row = await info.context.loaders.users.load(user_id) if user_id else None
        return cls.from_row(row) if row else None


@strawberry.type(description="Tokens for a signed-in session.")
class AuthPayload:
    access_token: str = strawberry.field(description="RS256 JWT; send as 'Authorization: Bearer <token>'.")
    refresh_token: str = strawberry.field(description="Opaque; keep it secret. Exchanged for new tokens.")
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User


SignUpResult = Annotated[AuthPayload | ValidationError | ConflictError, strawberry.union("SignUpResult")]
SignInResult = Annotated[
    AuthPayload | AuthenticationError | ValidationError, strawberry.union("SignInResult")
]
