"""The users subgraph: identity and profiles."""

from __future__ import annotations

import strawberry
from strawberry.federation import Schema

from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.mutations import run_in_transaction
from subgraphs.kernel.permissions import IsAuthenticated
from subgraphs.users import service
from subgraphs.users.inputs import SignInInput, SignUpInput
from subgraphs.users.issuer import issuer_for
from subgraphs.users.service import AuthResult, SignUpData
from subgraphs.users.types import AuthPayload, SignInResult, SignUpResult, User, UsersInfo


def _payload(result: AuthResult) -> AuthPayload:
    return AuthPayload(
        access_token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=User.from_row(result.user),
    )


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user.", permission_classes=[IsAuthenticated])
    async def me(self, info: UsersInfo) -> User | None:
        principal = info.context.require_principal()
        row = await info.context.loaders.users.load(principal.user_id)
        return User.from_row(row) if row else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def sign_up(self, info: UsersInfo, input: SignUpInput) -> SignUpResult:
        ctx = info.context
        data = SignUpData(input.first_name, input.last_name, input.username, input.email, input.password)

        async def operation() -> AuthPayload:
            issuer = issuer_for(ctx.runtime)
            ttl = ctx.runtime.settings.refresh_token_ttl_seconds
            return _payload(await service.sign_up(ctx.uow, issuer, data, ttl))

        return await run_in_transaction(ctx.uow, operation)

    @strawberry.mutation(description="Sign in with e-mail and password.")
    async def sign_in(self, info: UsersInfo, input: SignInInput) -> SignInResult:
        ctx = info.context

        async def operation() -> AuthPayload:
            issuer = issuer_for(ctx.runtime)
            ttl = ctx.runtime.settings.refresh_token_ttl_seconds
            return _payload(await service.sign_in(ctx.uow, issuer, input.email, input.password, ttl))

        return await run_in_transaction(ctx.uow, operation)


schema = Schema(
    query=Query,
    mutation=Mutation,
    types=[User, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
