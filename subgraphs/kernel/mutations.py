"""Running a mutation: one transaction, domain errors mapped to the payload's error types."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from strawberry.types import Info

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import BeepGraphQLError, DomainError, TenantMoved, TopLevelCode, user_error
from subgraphs.kernel.uow import UnitOfWork

T = TypeVar("T")
log = logging.getLogger("beep.mutations")


# A write that reached the old copy of a moving tenant is retried this many times, twice as late each
# time: the move's directory commit follows its fence by milliseconds, but a loaded machine can stretch
# that (the waits add up to 1.55 s).
MOVED_RETRIES = 5
MOVED_BACKOFF_SECONDS = 0.05


async def run_in_transaction(uow: UnitOfWork, operation: Callable[[], Awaitable[T]]) -> T | Any:
    """Commit on success (then publish events); on a domain error roll back and return its GraphQL shape.
    When the tenant moved shard under the transaction (`TenantMoved`), start over on the new shard."""
    for attempt in range(1, MOVED_RETRIES + 2):
        try:
            async with uow.atomic():
                return await operation()
        except DomainError as error:
            return user_error(error)
        except TenantMoved as moved:
            log.info("the tenant moved shard under a write; retrying", extra={"server_id": moved.server_id})
            uow.database.locator.invalidate()
            await uow.close()  # forget the sessions and the shards located for the old copy
            if attempt <= MOVED_RETRIES:
                await asyncio.sleep(MOVED_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise BeepGraphQLError("This server is moving to another shard; try again.", TopLevelCode.UNAVAILABLE)


async def signed_in_mutation(
    info: Info[BeepContext[Any], None],
    operation: Callable[[BeepContext[Any], Principal], Awaitable[T]],
) -> T | Any:
    """The shape of every mutation that needs a signed-in caller: the principal (UNAUTHENTICATED
    otherwise), then `operation` in one transaction with its domain errors mapped to the payload's types."""
    ctx = info.context
    principal = ctx.require_principal()
    return await run_in_transaction(ctx.uow, lambda: operation(ctx, principal))
