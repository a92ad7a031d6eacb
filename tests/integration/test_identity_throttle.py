"""Failed sign-ins are slowed down per account (5 per 15 minutes) and per client address (30)."""

from __future__ import annotations

import secrets

import httpx

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import sign_up, unique
from tests.integration.identity_helpers import SIGN_IN, sign_in, user_error


async def test_an_account_is_locked_after_five_failures_even_for_the_right_password(stack: Stack) -> None:
    client = GraphQLClient(stack.router_url)
    person, bystander = await sign_up(client, "target"), await sign_up(client, "bystander")
    for _ in range(5):
        assert user_error(await sign_in(client, person.email, "wrong-guess"))[0] == "INVALID_CREDENTIALS"
    locked = await sign_in(client, person.email.upper(), person.password)
    assert user_error(locked) == ("RATE_LIMITED", "email")
    assert "try again in" in locked["message"]
    # Another account from the same address is not affected.
    assert (await sign_in(client, bystander.email, bystander.password))["__typename"] == "AuthPayload"


async def test_a_client_address_is_locked_after_thirty_failures(stack: Stack) -> None:
    """Through the users subgraph as the router calls it (the router appends the client's address to
    X-Forwarded-For; the subgraph reads the last entry)."""
    person = await sign_up(GraphQLClient(stack.router_url), "victim")
    address = f"203.0.113.{secrets.randbelow(250) + 1}"
    other_address = "198.51.100.7"

    async def attempt(email: str, password: str, via: str) -> dict[str, object]:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                stack.subgraph_urls["users"],
                json={"query": SIGN_IN, "variables": {"input": {"email": email, "password": password}}},
                headers={"x-forwarded-for": f"10.9.9.9, {via}", **stack.internal_headers},
            )
        return dict(response.json()["data"]["signIn"])

    for _ in range(30):  # different accounts each time: only the address limit can trip
        failed = await attempt(f"{unique('guess')}@example.test", "wrong-guess", address)
        assert failed["code"] == "INVALID_CREDENTIALS", failed
    assert (await attempt(person.email, person.password, address))["code"] == "RATE_LIMITED"
    assert (await attempt(person.email, person.password, other_address))["__typename"] == "AuthPayload"


async def test_the_router_appends_the_client_address_so_it_cannot_be_forged() -> None:
    """A client sending its own X-Forwarded-For still counts against its real address (the router adds
    it last). On a stack of its own: it locks the loopback address out of sign-in for 15 minutes."""
    stack = start_embedded()
    try:
        client = GraphQLClient(stack.router_url)
        person = await sign_up(client, "forger")
        for i in range(30):
            forged = {"x-forwarded-for": f"203.0.113.{i + 1}"}
            result = await client.execute(
                SIGN_IN, {"input": {"email": f"{unique('guess')}@example.test", "password": "x"}}, **forged
            )
            assert result.data is not None and result.data["signIn"]["code"] == "INVALID_CREDENTIALS"
        fresh = {"x-forwarded-for": "203.0.113.200"}
        result = await client.execute(
            SIGN_IN, {"input": {"email": person.email, "password": person.password}}, **fresh
        )
        assert result.data is not None and result.data["signIn"]["code"] == "RATE_LIMITED"
    finally:
        stack.stop()
