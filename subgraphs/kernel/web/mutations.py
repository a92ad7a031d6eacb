"""Running a mutation: one transaction, domain errors mapped to the payload's error types; and the error
codes each mutation declares it can return (`error_codes`), named in the schema and checked on every result.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    BeepGraphQLError,
    DomainError,
    ErrorCode,
    ErrorTypes,
    TenantMoved,
    TopLevelCode,
    UserError,
)
from subgraphs.kernel.tenancy.uow import UnitOfWork, retrying_moves
from subgraphs.kernel.web.context import BeepContext

log = logging.getLogger("beep.errors")

T = TypeVar("T")
E = TypeVar("E", bound=UserError)
F = TypeVar("F")


async def run_in_transaction(
    uow: UnitOfWork, operation: Callable[[], Awaitable[T]], errors: ErrorTypes[E]
) -> T | E:
    """Commit on success (then publish events); on a domain error roll back and return its GraphQL shape,
    one of `errors` (the result union's error types). When the tenant moved shard under the transaction, it
    starts over on the new shard (`retrying_moves`)."""
    return await with_errors_shaped(lambda: retrying_moves(uow, operation), errors)


async def with_errors_shaped(operation: Callable[[], Awaitable[T]], errors: ErrorTypes[E]) -> T | E:
    """`operation`'s result, or its domain error in its GraphQL shape (one of `errors`); a tenant still
    moving after the retries is UNAVAILABLE."""
    try:
        return await operation()
    except DomainError as error:
        return errors.shape(error)
    except TenantMoved as moved:
        message = "This server is moving to another shard; try again."
        raise BeepGraphQLError(message, TopLevelCode.UNAVAILABLE) from moved


async def signed_in_mutation(
    info: Info[BeepContext[Any], None],
    operation: Callable[[BeepContext[Any], Principal], Awaitable[T]],
    errors: ErrorTypes[E],
    *,
    own_transaction: bool = False,
) -> T | E:
    """The shape of every mutation that needs a signed-in caller: the principal (UNAUTHENTICATED
    otherwise), then `operation` in one transaction with its domain errors mapped to the payload's types.
    `own_transaction`: the operation opens its own (the send's single statement, messages/service.py)."""
    ctx = info.context
    principal = ctx.require_principal()
    if own_transaction:
        return await with_errors_shaped(lambda: operation(ctx, principal), errors)
    return await run_in_transaction(ctx.uow, lambda: operation(ctx, principal), errors)


# --- the codes a mutation declares ---------------------------------------------------------------------


class UndeclaredErrorCode(Exception):
    """A mutation returned a user error with a code it does not declare (`error_codes`): the schema told
    clients a list of codes to expect, and this one is not on it."""


def declared_codes(field: StrawberryField) -> frozenset[ErrorCode] | None:
    """The codes a mutation field declares; None when it declares none (a mistake the tests catch)."""
    found = next((e for e in field.extensions if isinstance(e, DeclaredErrors)), None)
    return None if found is None else found.codes


def errors_line(codes: frozenset[ErrorCode]) -> str:
    """How the declared codes read in the field's description, in the SDL."""
    return "Errors: " + ", ".join(sorted(code.value for code in codes)) + "."


def error_codes(*codes: ErrorCode) -> Callable[[F], F]:
    """Declare, above `@strawberry.mutation`, the codes the mutation's result can carry in its `UserError`.

    The codes are named at the end of the field's description ("Errors: FORBIDDEN, NOT_FOUND."), so a
    client reading the schema knows what to handle, and every result is checked against them
    (`DeclaredErrors`). tests/unit/test_mutation_error_codes.py compares them with the codes the
    mutation's code can reach."""
    declared = frozenset(codes)

    def declare(field: F) -> F:
        if not isinstance(field, StrawberryField):
            raise TypeError("@error_codes goes above @strawberry.mutation")
        if declared:
            # One newline: a blank line would carry the SDL printer's indentation as trailing spaces.
            field.description = f"{field.description or ''}\n{errors_line(declared)}".lstrip()
        field.extensions.append(DeclaredErrors(declared))
        return field

    return declare


class DeclaredErrors(FieldExtension):
    """Checks a mutation's result against the codes it declares. An undeclared code is logged as an error;
    with `strict_errors` (the tests' setting) it fails the mutation, so a test that meets one fails."""

    def __init__(self, codes: frozenset[ErrorCode]) -> None:
        self.codes = codes

    def _check(self, result: Any, info: Info[Any, Any]) -> Any:
        if isinstance(result, UserError) and result.code not in self.codes:
            declared = ", ".join(sorted(code.value for code in self.codes)) or "none"
            message = (
                f"{info.field_name} returned {result.code.value}, which it does not declare ({declared})"
            )
            settings = getattr(getattr(info.context, "runtime", None), "settings", None)
            if getattr(settings, "strict_errors", False):
                raise UndeclaredErrorCode(message)
            log.error("undeclared error code", extra={"field": info.field_name, "code": result.code.value})
        return result

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any) -> Any:
        return self._check(next_(source, info, **kwargs), info)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        return self._check(await next_(source, info, **kwargs), info)
