"""User search by username prefix: case-insensitive, literal (no wildcards), limited and paginated."""

from __future__ import annotations

import secrets

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import SIGN_UP, sign_up

SEARCH = """query($p: String!, $first: Int, $after: String) {
  searchUsers(prefix: $p, first: $first, after: $after) {
    edges { cursor node { id username email } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _named(client: GraphQLClient, username: str) -> str:
    data = await client.data(
        SIGN_UP,
        {
            "input": {
                "firstName": "S",
                "lastName": "T",
                "username": username,
                "email": f"{username}@example.test",
                "password": "pw-" + secrets.token_hex(6),
            }
        },
    )
    return str(data["signUp"]["user"]["id"])


async def test_search_by_prefix_pages_alphabetically(stack: Stack) -> None:
    client = GraphQLClient(stack.router_url)
    searcher = await sign_up(client, "searcher")
    stem = f"Srch{secrets.token_hex(3)}"
    ids = {name: await _named(client, name) for name in (f"{stem}_c", f"{stem}a", f"{stem}B", f"{stem}xb")}
    me = client.with_token(searcher.token)

    first = (await me.data(SEARCH, {"p": stem.upper(), "first": 2}))["searchUsers"]
    assert [e["node"]["username"] for e in first["edges"]] == [f"{stem}_c", f"{stem}a"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert all(e["node"]["email"] is None for e in first["edges"])  # never someone else's address
    rest = (await me.data(SEARCH, {"p": stem, "first": 2, "after": first["pageInfo"]["endCursor"]}))[
        "searchUsers"
    ]
    assert [e["node"]["username"] for e in rest["edges"]] == [f"{stem}B", f"{stem}xb"]
    assert rest["pageInfo"]["hasNextPage"] is False

    literal = (await me.data(SEARCH, {"p": f"{stem}_"}))["searchUsers"]  # '_' is not a wildcard
    assert [e["node"]["id"] for e in literal["edges"]] == [ids[f"{stem}_c"]]


async def test_search_refuses_bad_input_and_anonymous_callers(stack: Stack) -> None:
    client = GraphQLClient(stack.router_url)
    searcher = await sign_up(client, "searcher")
    assert (await client.execute(SEARCH, {"p": "a"})).codes == ["UNAUTHENTICATED"]
    me = client.with_token(searcher.token)
    for prefix in ("%", "", "a" * 33, "a b"):
        assert (await me.execute(SEARCH, {"p": prefix})).codes == ["BAD_USER_INPUT"], prefix
    assert (await me.execute(SEARCH, {"p": "a", "first": 101})).codes == ["BAD_USER_INPUT"]
