"""Running a mutation: one transaction, domain errors mapped to the payload's error types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from strawberry.types import Info

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import (
    BeepGraphQLError,
    DomainError,
    ErrorTypes,
    TenantMoved,
    TopLevelCode,
    UserError,
)
from subgraphs.kernel.uow import UnitOfWork, retrying_moves

T = TypeVar("T")
E = TypeVar("E", bound=UserError)


async def run_in_transaction(
    uow: UnitOfWork, operation: Callable[[], Awaitable[T]], errors: ErrorTypes[E]
) -> T | E:
    """Commit on success (then publish events); on a domain error roll back and return its GraphQL shape,
    one of `errors` (the result union's error types). When the tenant moved shard under the transaction, it
    starts over on the new shard (`retrying_moves`)."""
    try:
        return await retrying_moves(uow, operation)
    except DomainError as error:
        return errors.shape(error)
    except TenantMoved as moved:
        message = "This server is moving to another shard; try again."
        raise BeepGraphQLError(message, TopLevelCode.UNAVAILABLE) from moved


async def signed_in_mutation(
    info: Info[BeepContext[Any], None],
    operation: Callable[[BeepContext[Any], Principal], Awaitable[T]],
    errors: ErrorTypes[E],
) -> T | E:
    """The shape of every mutation that needs a signed-in caller: the principal (UNAUTHENTICATED
    otherwise), then `operation` in one transaction with its domain errors mapped to the payload's types."""
    ctx = info.context
    principal = ctx.require_principal()
    return await run_in_transaction(ctx.uow, lambda: operation(ctx, principal), errors)
