"""Running a mutation: one transaction, domain errors mapped to the payload's error types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from subgraphs.kernel.errors import DomainError, user_error
from subgraphs.kernel.uow import UnitOfWork

T = TypeVar("T")


async def run_in_transaction(uow: UnitOfWork, operation: Callable[[], Awaitable[T]]) -> T | Any:
    """Commit on success (then publish events); on a domain error roll back and return its GraphQL shape."""
    try:
        async with uow.atomic():
            return await operation()
    except DomainError as error:
        return user_error(error)
