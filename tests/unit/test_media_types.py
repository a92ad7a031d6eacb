"""`Accept: application/graphql-response+json` is honoured when the client prefers it (GraphQL over HTTP);
the subgraphs' answers to it are checked end to end in tests/security/test_cors_and_media_types.py."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from subgraphs.kernel.media_types import GRAPHQL_RESPONSE, GraphQLResponseMedia, wants_graphql_response


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/graphql-response+json, application/json, multipart/mixed", True),  # the router's
        ("application/graphql-response+json", True),
        ("application/json;q=0.9, application/graphql-response+json", True),
        ("Application/GraphQL-Response+JSON; charset=utf-8", True),
        ("application/graphql-response+json;q=0.5, */*;q=0.1", True),
        ("application/json, application/graphql-response+json;q=0.9", False),
        ("application/graphql-response+json;q=0", False),
        ("application/graphql-response+json;q=abc", False),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        (None, False),
        (",,;;==" * 1000, False),
    ],
)
def test_the_media_type_is_chosen_by_preference(accept: str | None, wanted: bool) -> None:
    assert wants_graphql_response(accept) is wanted


async def _json(_request: Request) -> Response:
    return JSONResponse({"data": {"ok": True}})


async def _text(_request: Request) -> Response:
    return PlainTextResponse("no", status_code=400)


APP = GraphQLResponseMedia(Starlette(routes=[Route("/json", _json), Route("/text", _text)]))


def test_json_answers_are_labelled_for_a_client_that_prefers_the_media_type() -> None:
    client = TestClient(APP)
    labelled = client.get("/json", headers={"accept": f"{GRAPHQL_RESPONSE}, application/json"})
    assert labelled.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert labelled.json() == {"data": {"ok": True}}
    assert client.get("/json", headers={"accept": "application/json"}).headers["content-type"] == (
        "application/json"
    )
    # Only JSON is relabelled
    text = client.get("/text", headers={"accept": GRAPHQL_RESPONSE})
    assert text.headers["content-type"].startswith("text/plain") and text.status_code == 400
