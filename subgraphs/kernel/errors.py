"""Errors: domain errors raised by services, their GraphQL shapes, and the top-level errors (the masking
of the unexpected: kernel/web/error_masking.py).

Expected failures are part of the schema: a mutation returns a union of its success type and error types
implementing `UserError { code message field }`. Failures that are not the caller's to handle in the UI
(not signed in, a malformed ID in a query, a bug) are top-level GraphQL errors with `extensions.code`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar, cast, overload

import strawberry
from graphql import GraphQLError

from subgraphs.kernel.i18n import translate

log = logging.getLogger("beep.errors")


@strawberry.enum(description="Why an operation failed. Stable: clients branch on it.")
class ErrorCode(enum.Enum):
    INVALID_INPUT = "INVALID_INPUT"
    REQUIRED = "REQUIRED"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    INVALID_FORMAT = "INVALID_FORMAT"
    INVALID_ID = "INVALID_ID"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ALREADY_MEMBER = "ALREADY_MEMBER"
    INVALID_PARENT = "INVALID_PARENT"
    INVALID_PERMISSIONS = "INVALID_PERMISSIONS"
    ROLE_HIERARCHY = "ROLE_HIERARCHY"
    LIMIT_REACHED = "LIMIT_REACHED"
    BANNED = "BANNED"
    CONFIRMATION_MISMATCH = "CONFIRMATION_MISMATCH"
    NONCE_REUSED = "NONCE_REUSED"
    TOTP_REQUIRED = "TOTP_REQUIRED"
    INVALID_TOTP_CODE = "INVALID_TOTP_CODE"
    TOTP_NOT_ENABLED = "TOTP_NOT_ENABLED"
    TOTP_ALREADY_ENABLED = "TOTP_ALREADY_ENABLED"
    RATE_LIMITED = "RATE_LIMITED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    UNSUPPORTED_IMAGE_TYPE = "UNSUPPORTED_IMAGE_TYPE"
    IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
    IMAGE_DIMENSIONS_TOO_LARGE = "IMAGE_DIMENSIONS_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    CONTENT_TYPE_MISMATCH = "CONTENT_TYPE_MISMATCH"
    TOO_MANY_FILES = "TOO_MANY_FILES"
    INVALID_SDP = "INVALID_SDP"
    NO_AUDIO = "NO_AUDIO"
    ALREADY_IN_CALL = "ALREADY_IN_CALL"
    NOT_IN_CALL = "NOT_IN_CALL"
    MEDIA_UNAVAILABLE = "MEDIA_UNAVAILABLE"
    ALREADY_FRIENDS = "ALREADY_FRIENDS"
    NOT_FRIENDS = "NOT_FRIENDS"
    BLOCKED = "BLOCKED"
    DUPLICATE_ID = "DUPLICATE_ID"
    NOT_PARTICIPANT = "NOT_PARTICIPANT"
    NOT_OWNER = "NOT_OWNER"


# Codes that travel together, for a mutation's `@error_codes(…)` (kernel/web/mutations.py): the rules of a
# text input (kernel/web/validation.py `clean_text`) and the checks of an uploaded picture
# (kernel/web/uploads.py).
TEXT_CODES = (ErrorCode.REQUIRED, ErrorCode.TOO_SHORT, ErrorCode.TOO_LONG, ErrorCode.INVALID_FORMAT)
PICTURE_CODES = (
    ErrorCode.FILE_TOO_LARGE,
    ErrorCode.UNSUPPORTED_IMAGE_TYPE,
    ErrorCode.IMAGE_UNDECODABLE,
    ErrorCode.IMAGE_DIMENSIONS_TOO_LARGE,
)


class TopLevelCode(enum.StrEnum):
    """`extensions.code` of top-level errors."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    CURSOR_EXPIRED = "CURSOR_EXPIRED"  # resume older than the event retention: reload, then resume
    # A limit on the operation's shape (depth, aliases, tokens: kernel/web/limits.py); the router's name for
    # it.
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"  # more list items than one response may hold: ask for less
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


# --- domain errors (raised by services) ---------------------------------------------------------------


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, code: ErrorCode | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationFailed(DomainError):
    code = ErrorCode.INVALID_INPUT


class NotFound(DomainError):
    """Also used for what exists but the caller may not see, so existence does not leak."""

    code = ErrorCode.NOT_FOUND


class PermissionDenied(DomainError):
    code = ErrorCode.FORBIDDEN


class Conflict(DomainError):
    code = ErrorCode.ALREADY_EXISTS


class AuthenticationFailed(DomainError):
    code = ErrorCode.INVALID_CREDENTIALS


class TenantMoved(Exception):
    """A write reached the old copy of a tenant that has moved to another shard (`beep tenants move`).
    Not a domain error: `run_in_transaction` retries the mutation, which then finds the new copy."""

    def __init__(self, server_id: int, shard: int) -> None:
        super().__init__(f"server {server_id} has moved to shard {shard}")
        self.server_id = server_id
        self.shard = shard


# --- GraphQL shapes -----------------------------------------------------------------------------------


@strawberry.interface(description="An expected failure the client can show next to a form field.")
class UserError:
    code: ErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, when there is one.")


@strawberry.federation.type(shareable=True, description="The input broke a rule (length, format...).")
class ValidationError(UserError):
    pass


@strawberry.federation.type(shareable=True, description="No such thing, or not visible to you.")
class NotFoundError(UserError):
    pass


# Named ForbiddenError in Python (PermissionError is a built-in it would shadow); the schema keeps the
# name clients already branch on.
@strawberry.federation.type(
    name="PermissionError", shareable=True, description="You can see it but may not do this."
)
class ForbiddenError(UserError):
    pass


@strawberry.federation.type(shareable=True, description="It conflicts with something that exists.")
class ConflictError(UserError):
    pass


@strawberry.federation.type(shareable=True, description="Wrong e-mail or password.")
class AuthenticationError(UserError):
    pass


ERROR_TYPES: tuple[type, ...] = (
    ValidationError,
    NotFoundError,
    ForbiddenError,
    ConflictError,
    AuthenticationError,
)

_SHAPES: dict[type[DomainError], type] = {
    ValidationFailed: ValidationError,
    NotFound: NotFoundError,
    PermissionDenied: ForbiddenError,
    Conflict: ConflictError,
    AuthenticationFailed: AuthenticationError,
}


def user_error(error: DomainError) -> UserError:
    """The GraphQL shape of a domain error, its message in the caller's language."""
    shape = next(s for cls, s in _SHAPES.items() if isinstance(error, cls))
    found: UserError = shape(
        code=error.code, message=translate(error.message, code=error.code.value), field=error.field
    )
    return found


E = TypeVar("E", bound=UserError, covariant=True)
E1 = TypeVar("E1", bound=UserError)
E2 = TypeVar("E2", bound=UserError)
E3 = TypeVar("E3", bound=UserError)
E4 = TypeVar("E4", bound=UserError)
E5 = TypeVar("E5", bound=UserError)


class UndeclaredErrorType(Exception):
    """A mutation met a domain error whose GraphQL type its result union does not hold: a bug. The client
    sees INTERNAL_SERVER_ERROR (as it would when GraphQL failed to resolve the union); the log names it."""


@dataclass(frozen=True)
class ErrorTypes(Generic[E]):
    """The error types of a mutation's result union, written where the mutation runs
    (`error_types(NotFoundError, ValidationError)`): the helpers that map domain errors return `T | E`,
    so mypy checks the result against the union the resolver declares, and `shape` refuses at run time a
    domain error of any other type."""

    types: tuple[type[UserError], ...]

    def shape(self, error: DomainError) -> E:
        found = user_error(error)
        if not isinstance(found, self.types):
            held = ", ".join(t.__name__ for t in self.types) or "no error types"
            raise UndeclaredErrorType(
                f"{type(error).__name__}({error.message!r}, code={error.code.value}) is a "
                f"{type(found).__name__}; this mutation's union holds {held}"
            ) from error
        return cast(E, found)


@overload
def error_types() -> ErrorTypes[NoReturn]: ...
@overload
def error_types(a: type[E1], /) -> ErrorTypes[E1]: ...
@overload
def error_types(a: type[E1], b: type[E2], /) -> ErrorTypes[E1 | E2]: ...
@overload
def error_types(a: type[E1], b: type[E2], c: type[E3], /) -> ErrorTypes[E1 | E2 | E3]: ...
@overload
def error_types(a: type[E1], b: type[E2], c: type[E3], d: type[E4], /) -> ErrorTypes[E1 | E2 | E3 | E4]: ...
@overload
def error_types(
    a: type[E1], b: type[E2], c: type[E3], d: type[E4], e: type[E5], /
) -> ErrorTypes[E1 | E2 | E3 | E4 | E5]: ...
def error_types(*types: type[UserError]) -> ErrorTypes[Any]:
    return ErrorTypes(types)


# Where no union limits the result (the webhooks' REST endpoint answers any user error as JSON).
ANY_ERROR_TYPE = error_types(
    ValidationError, NotFoundError, ForbiddenError, ConflictError, AuthenticationError
)


# --- top-level errors ---------------------------------------------------------------------------------


class BeepGraphQLError(GraphQLError):
    def __init__(self, message: str, code: TopLevelCode, **extensions: Any) -> None:
        super().__init__(translate(message, code=code.value), extensions={"code": code.value, **extensions})


def unauthenticated(message: str = "Sign in to do this.") -> BeepGraphQLError:
    return BeepGraphQLError(message, TopLevelCode.UNAUTHENTICATED)


def bad_user_input(message: str, argument: str | None = None) -> BeepGraphQLError:
    extra = {"argument": argument} if argument else {}
    return BeepGraphQLError(message, TopLevelCode.BAD_USER_INPUT, **extra)


def not_found(message: str) -> BeepGraphQLError:
    return BeepGraphQLError(message, TopLevelCode.NOT_FOUND)


def forbidden(message: str) -> BeepGraphQLError:
    return BeepGraphQLError(message, TopLevelCode.FORBIDDEN)
