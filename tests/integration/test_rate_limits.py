"""Creation is rate limited per user, across processes (Redis in the full stack)."""

from __future__ import annotations

from subgraphs.kernel.web.ratelimit import CREATE_SERVER
from tests.harness.stack import Stack
from tests.integration.flows import CREATE_SERVER as CREATE_SERVER_MUTATION
from tests.integration.flows import Users


async def test_creating_servers_too_fast_is_refused_with_retry_after(stack: Stack) -> None:
    users = Users(stack)
    _ada, as_ada = await users.new("ada")
    _bob, as_bob = await users.new("bob")
    for i in range(CREATE_SERVER.count):
        created = await as_ada.data(CREATE_SERVER_MUTATION, {"input": {"name": f"Server {i}"}})
        assert created["createServer"]["__typename"] == "Server"
    refused = await as_ada.execute(CREATE_SERVER_MUTATION, {"input": {"name": "One too many"}})
    assert refused.data is None or refused.data.get("createServer") is None
    (error,) = refused.errors
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= CREATE_SERVER.window_seconds
    # Per user: someone else may still create one.
    other = await as_bob.data(CREATE_SERVER_MUTATION, {"input": {"name": "Mine"}})
    assert other["createServer"]["__typename"] == "Server"
