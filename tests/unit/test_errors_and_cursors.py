from __future__ import annotations

import pytest
from graphql import GraphQLError

from db.ids import IdGenerator
from subgraphs.kernel.errors import (
    ConflictError,
    ErrorCode,
    NotFound,
    NotFoundError,
    PermissionDenied,
    UndeclaredErrorType,
    ValidationError,
    ValidationFailed,
    error_types,
    user_error,
)
from subgraphs.kernel.web.pagination import decode_cursor, encode_cursor, page_size


def test_domain_errors_map_to_their_graphql_shapes() -> None:
    shaped = user_error(ValidationFailed("bad", code=ErrorCode.TOO_LONG, field="name"))
    assert isinstance(shaped, ValidationError)
    assert (shaped.code, shaped.message, shaped.field) == (ErrorCode.TOO_LONG, "bad", "name")
    assert isinstance(user_error(NotFound("gone")), NotFoundError)
    assert not isinstance(user_error(NotFound("gone")), ConflictError)


def test_a_mutation_returns_only_the_error_types_of_its_union() -> None:
    errors = error_types(ValidationError, NotFoundError)
    assert isinstance(errors.shape(NotFound("gone")), NotFoundError)
    assert isinstance(errors.shape(ValidationFailed("bad")), ValidationError)
    with pytest.raises(UndeclaredErrorType, match=r"union holds ValidationError, NotFoundError$"):
        errors.shape(PermissionDenied("no"))
    with pytest.raises(UndeclaredErrorType, match="holds no error types"):
        error_types().shape(NotFound("gone"))


def test_cursors_round_trip_and_reject_garbage() -> None:
    entity_id = IdGenerator().new_id(5)
    assert decode_cursor(encode_cursor(entity_id), "before") == entity_id
    for garbage in ("", "%%%", "aWQ6", "eDoxMjM", encode_cursor(1)[:-2] + "!!"):
        with pytest.raises(GraphQLError) as caught:
            decode_cursor(garbage, "before")
        assert caught.value.extensions == {"code": "BAD_USER_INPUT", "argument": "before"}


@pytest.mark.parametrize("first", [0, -1, 101])
def test_page_size_bounds(first: int) -> None:
    with pytest.raises(GraphQLError):
        page_size(first)


def test_page_size_default() -> None:
    assert page_size(None) == 50 and page_size(100) == 100
