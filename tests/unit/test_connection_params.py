"""The token of a graphql-transport-ws connection_init, under any of the keys client libraries use."""

from __future__ import annotations

import pytest

from subgraphs.kernel.auth import connection_authorization


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"authorization": "Bearer abc"}, "Bearer abc"),
        ({"Authorization": "Bearer abc"}, "Bearer abc"),
        ({"AUTHORIZATION": "bearer abc"}, "bearer abc"),
        ({"authToken": "abc"}, "Bearer abc"),
        ({"token": "Bearer abc"}, "Bearer abc"),
        ({"Authorization": "", "authToken": "abc"}, "Bearer abc"),
        ({"other": "x"}, None),
    ],
)
def test_a_connection_init_token_is_read_under_any_usual_key(
    params: dict[str, object], expected: object
) -> None:
    assert connection_authorization(params) == expected
