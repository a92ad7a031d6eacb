"""Error messages in the caller's language (their setting, else Accept-Language); codes never change."""

from __future__ import annotations

import httpx

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import CREATE_SERVER, SIGN_IN, sign_up
from tests.integration.identity_helpers import UPDATE_PROFILE


async def _wrong_password(stack: Stack, email: str, **headers: str) -> dict[str, str]:
    result = await GraphQLClient(stack.router_url).execute(
        SIGN_IN, {"input": {"email": email, "password": "not-it-at-all"}}, **headers
    )
    assert result.data is not None, result.errors
    return dict(result.data["signIn"])


async def test_accept_language_picks_french_with_the_same_code(stack: Stack) -> None:
    person = await sign_up(GraphQLClient(stack.router_url), "lang")
    english = await _wrong_password(stack, person.email)
    french = await _wrong_password(stack, person.email, **{"accept-language": "de-DE, fr;q=0.8, en;q=0.5"})
    german_only = await _wrong_password(stack, person.email, **{"accept-language": "de"})
    assert english["message"] == german_only["message"] == "Wrong e-mail or password."
    assert french["message"] == "Adresse e-mail ou mot de passe incorrect."
    assert english["code"] == french["code"] == "INVALID_CREDENTIALS"


async def test_other_subgraphs_answer_in_french_too(stack: Stack) -> None:
    person = await sign_up(GraphQLClient(stack.router_url), "lang")
    client = GraphQLClient(stack.router_url, person.token)
    result = await client.execute(CREATE_SERVER, {"input": {"name": "  "}}, **{"accept-language": "fr"})
    assert result.data is not None, result.errors
    assert result.data["createServer"] == {
        "__typename": "ValidationError",
        "code": "REQUIRED",
        "message": "name est obligatoire.",
        "field": "name",
    }


async def test_the_users_language_setting_wins_over_accept_language(stack: Stack) -> None:
    person = await sign_up(GraphQLClient(stack.router_url), "lang")
    me = GraphQLClient(stack.router_url, person.token)
    await me.data(UPDATE_PROFILE, {"input": {"language": "FR"}})
    # The setting travels in the token's `locale` claim: a token issued after the change carries it.
    signed_in = (
        await GraphQLClient(stack.router_url).data(
            SIGN_IN, {"input": {"email": person.email, "password": person.password}}
        )
    )["signIn"]
    french_user = GraphQLClient(stack.router_url, signed_in["accessToken"])
    result = await french_user.execute(
        UPDATE_PROFILE, {"input": {"bio": "b" * 191}}, **{"accept-language": "en"}
    )
    assert result.data is not None, result.errors
    payload = result.data["updateProfile"]
    assert (payload["code"], payload["field"]) == ("TOO_LONG", "bio")
    assert payload["message"] == "bio doit contenir au plus 190 caractères."


async def test_a_refused_token_is_answered_in_the_requests_language(stack: Stack) -> None:
    # Refused before any user is known (kernel/web/app.py AuthMiddleware): only Accept-Language can choose.
    async with httpx.AsyncClient(timeout=15) as http:
        refused = await http.post(
            stack.subgraph_urls["servers"],
            json={"query": "{ __typename }"},
            headers={
                "authorization": "Bearer not-a-token",
                "accept-language": "fr",
                **stack.internal_headers,
            },
        )
    assert refused.status_code == 401, refused.text
    assert refused.json()["errors"] == [
        {"message": "Jeton d'accès invalide ou expiré.", "extensions": {"code": "UNAUTHENTICATED"}}
    ]
