"""Which failures mean "the database is not reachable right now" (UNAVAILABLE: retry) and which are bugs."""

from __future__ import annotations

import asyncpg
import pytest
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError, IntegrityError

from db.failures import database_unavailable
from subgraphs.kernel.web.error_masking import MaskUnexpectedErrors


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _raised_by_driver() -> ConnectionRefusedError:
    # What asyncpg's connect raises when no host answers: a plain OSError from inside the driver.
    try:
        code = compile("raise ConnectionRefusedError(111, 'refused')", "connect_utils.py", "exec")
        exec(code, {"__name__": "asyncpg.connect_utils"})  # a frame of a module named like the driver's
    except ConnectionRefusedError as error:
        return error
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(Exception("connection reset"), invalidated=True),
        _wrapped(asyncpg.exceptions.ReadOnlySQLTransactionError("read-only")),
        _wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        _wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        asyncpg.exceptions.TargetServerAttributeNotMatched("not a primary"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        _wrapped(asyncpg.exceptions.InterfaceError("connection is closed")),
    ],
    ids=[
        "invalidated",
        "read-only",
        "admin-shutdown",
        "starting-up",
        "no-primary",
        "closed-mid-statement",
        "closed-before-statement",
    ],
)
def test_failover_symptoms_are_unavailable(error: BaseException) -> None:
    assert database_unavailable(error)


def test_a_refused_socket_is_the_databases_only_when_the_driver_raised_it() -> None:
    assert database_unavailable(_raised_by_driver())
    assert not database_unavailable(ConnectionRefusedError(111, "refused"))  # e.g. an HTTP fetch


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, asyncpg.exceptions.UniqueViolationError("duplicate key")),
        _wrapped(asyncpg.exceptions.UndefinedTableError("no such table")),
        ValueError("a bug"),
        _wrapped(
            asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress")
        ),
        ValueError("connection is closed"),  # the words alone, not from the driver
    ],
)
def test_other_failures_stay_server_errors(error: BaseException) -> None:
    assert not database_unavailable(error)


def test_the_masking_extension_answers_unavailable_without_details() -> None:
    cause = _wrapped(asyncpg.exceptions.ReadOnlySQLTransactionError("secret detail"), invalidated=False)
    masked = MaskUnexpectedErrors().anonymise_error(GraphQLError("boom", original_error=cause, path=["x"]))
    assert masked.extensions == {"code": "UNAVAILABLE"}
    assert "secret" not in masked.message and masked.path == ["x"]
    bug = MaskUnexpectedErrors().anonymise_error(GraphQLError("boom", original_error=ValueError("secret")))
    assert bug.extensions == {"code": "INTERNAL_SERVER_ERROR"} and "secret" not in bug.message
