"""IDs at the GraphQL edge: clients send decimal strings; malformed ones are rejected with a code."""

from __future__ import annotations

from db.ids import parse_id
from subgraphs.kernel.errors import ErrorCode, ValidationFailed, bad_user_input


def id_argument(raw: str, argument: str) -> int:
    """For queries: a malformed ID is a top-level BAD_USER_INPUT error."""
    value = parse_id(raw)
    if value is None:
        raise bad_user_input(f"'{argument}' is not a valid ID.", argument)
    return value


def id_input(raw: str, field: str) -> int:
    """For mutation inputs: a malformed ID is a ValidationError on that field."""
    value = parse_id(raw)
    if value is None:
        raise ValidationFailed(f"'{field}' is not a valid ID.", code=ErrorCode.INVALID_ID, field=field)
    return value
