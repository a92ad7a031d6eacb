"""Untrusted input: typed errors with codes, never a 500, never a leak."""

from __future__ import annotations

import json
from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    CREATE_CHANNEL,
    CREATE_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    SIGN_UP,
    create_channel,
    create_server,
    sign_up,
)


async def test_unauthenticated_requests_get_unauthenticated(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    result = await anonymous.execute(CREATE_SERVER, {"input": {"name": "x"}})
    assert result.codes == ["UNAUTHENTICATED"]
    assert (await anonymous.execute("{ me { id } }")).codes == ["UNAUTHENTICATED"]

    forged = await anonymous.with_token("not.a.jwt").execute("{ me { id } }")
    assert forged.status != 500 and forged.codes == ["UNAUTHENTICATED"]


async def test_subscription_needs_a_valid_token(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    async with anonymous.subscriptions() as connection:
        op = await connection.subscribe(MESSAGE_EVENTS, {"channelId": "1"})
        message = await op.next()
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e.get("extensions", {}).get("code") for e in errors] == ["UNAUTHENTICATED"]


async def test_bad_channel_input_gets_typed_errors(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    server = await create_server(as_ada)

    async def create(**input_: object) -> dict[str, object]:
        result = await as_ada.execute(CREATE_CHANNEL, {"input": {"serverId": server["id"], **input_}})
        assert result.status != 500 and not result.errors, result
        assert result.data is not None
        return result.data["createChannel"]

    assert await create(name="") == {
        "__typename": "ValidationError",
        "code": "REQUIRED",
        "message": "name is required.",
        "field": "name",
    }
    assert (await create(name="   "))["code"] == "REQUIRED"
    too_long = await create(name="x" * 10_000)
    assert (too_long["__typename"], too_long["code"], too_long["field"]) == (
        "ValidationError",
        "TOO_LONG",
        "name",
    )
    assert (await create(name="bell\x07"))["code"] == "INVALID_FORMAT"
    assert (await create(name="ok", parentId="not-an-id"))["code"] == "INVALID_ID"
    text = await create_channel(as_ada, server["id"], "text")
    assert (await create(name="child", parentId=text["id"]))["code"] == "INVALID_PARENT"

    unknown_server = await as_ada.execute(CREATE_CHANNEL, {"input": {"serverId": "4242", "name": "x"}})
    assert unknown_server.data == {
        "createChannel": {
            "__typename": "NotFoundError",
            "code": "NOT_FOUND",
            "message": "No such server.",
            "field": "serverId",
        }
    }
    for malformed_id in ("abc", "123456789"):  # the second names logical shard 444, which does not exist
        malformed = await as_ada.execute(CREATE_CHANNEL, {"input": {"serverId": malformed_id, "name": "x"}})
        assert malformed.data and malformed.data["createChannel"]["__typename"] == "ValidationError", (
            malformed
        )


async def test_unknown_and_malformed_ids(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)

    unknown = await as_ada.execute(
        '{ server(id: "4242") { id } channel(id: "4242") { id } message(id: "4242") { id } }'
    )
    assert unknown.errors == [] and unknown.data == {"server": None, "channel": None, "message": None}

    for bad in ("abc", "-1", "0", "1" * 30, "١٢٣", "123456789"):
        result = await as_ada.execute("query($id: ID!) { server(id: $id) { id } }", {"id": bad})
        assert result.status != 500, result
        assert result.codes == ["BAD_USER_INPUT"], (bad, result)

    bad_cursor = await as_ada.execute('{ messages(channelId: "4242", before: "%%%") { edges { cursor } } }')
    assert bad_cursor.codes == ["BAD_USER_INPUT"]
    # (A page far larger, first: 100000, is refused by the router's cost limit before: tests/security.)
    bad_page = await as_ada.execute('{ messages(channelId: "4242", first: 1000) { edges { cursor } } }')
    assert bad_page.codes == ["BAD_USER_INPUT"]

    send_unknown = await as_ada.data(SEND_MESSAGE, {"input": {"channelId": "4242", "content": "hi"}})
    assert send_unknown["sendMessage"]["__typename"] == "NotFoundError"


async def test_message_content_rules(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    channel = await create_channel(as_ada, (await create_server(as_ada))["id"])
    for content, code in (("", "REQUIRED"), ("x" * 4001, "TOO_LONG")):
        result = await as_ada.data(SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": content}})
        assert result["sendMessage"]["code"] == code
    exact = await as_ada.data(SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": "y" * 4000}})
    assert exact["sendMessage"]["__typename"] == "Message"


async def test_sign_up_rules_and_no_secrets_in_responses(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    base = {
        "firstName": "A",
        "lastName": "B",
        "username": "fresh_name",
        "email": "fresh@example.test",
        "password": "long enough pw",
    }
    cases = [
        ({"username": ada.username.upper()}, "USERNAME_TAKEN", "username"),
        ({"email": ada.email}, "EMAIL_TAKEN", "email"),
        ({"username": "a"}, "TOO_SHORT", "username"),
        ({"username": "has space"}, "INVALID_FORMAT", "username"),
        ({"email": "not-an-email"}, "INVALID_FORMAT", "email"),
        ({"password": "short"}, "WEAK_PASSWORD", "password"),
        ({"firstName": ""}, "REQUIRED", "firstName"),
    ]
    for override, code, field in cases:
        result = await anonymous.execute(SIGN_UP, {"input": base | override})
        assert result.status != 500 and not result.errors
        assert result.data is not None
        payload = result.data["signUp"]
        assert (payload["code"], payload["field"]) == (code, field), (override, payload)

    bob = await sign_up(anonymous, "bob")
    as_bob = anonymous.with_token(bob.token)
    server = await create_server(anonymous.with_token(ada.token), "Shared")
    other = await as_bob.execute(
        "query($id: ID!) { server(id: $id) { owner { id username email } } }", {"id": server["id"]}
    )
    assert other.data == {"server": {"owner": {"id": ada.user_id, "username": ada.username, "email": None}}}
    raw = json.dumps(other.data) + json.dumps(await as_bob.data("{ me { id email username } }"))
    assert ada.email not in raw and ada.password not in raw and "argon2" not in raw


INTROSPECT_ROOT = """query($mutations: Boolean!) {
  __schema { root: mutationType @include(if: $mutations) { ...Fields } query: queryType { ...Fields } }
}
fragment Fields on __Type { fields { name
  args { name type { kind name ofType { kind name ofType { kind name } } } }
  type { kind name ofType { kind name ofType { kind name } } } } }"""
SAMPLE = {"String": "x", "Boolean": True, "Int": 1, "Float": 1.0}
UNION_SELECTION = "__typename ... on UserError { code field }"  # a selection, not a document


def _named(type_: dict[str, object]) -> dict[str, object]:
    while type_.get("ofType"):
        type_ = type_["ofType"]  # type: ignore[assignment]
    return type_


async def _call_with_malformed_ids(
    client: GraphQLClient, fields: list[dict[str, Any]], operation: str
) -> tuple[list[str], list[object]]:
    """Calls every field whose arguments are all scalars and include an ID, with "not-an-id" for each
    ID; the fields tried, and those answered by anything but a user error or a typed top-level error."""
    tried: list[str] = []
    failures: list[object] = []
    for field in fields:
        args = field["args"]
        named_args = [(a, _named(a["type"])) for a in args]
        if not any(t["name"] == "ID" for _a, t in named_args) or field["name"].startswith("_"):
            continue
        if any(t["kind"] != "SCALAR" or t["name"] not in {"ID", *SAMPLE} for _a, t in named_args):
            continue  # an input object or an upload: its IDs are parsed by the same helpers
        values = {
            a["name"]: "not-an-id" if t["name"] == "ID" else SAMPLE[str(t["name"])] for a, t in named_args
        }
        declared = ", ".join(f"${a['name']}: {_type_text(a['type'])}" for a in args)
        passed = ", ".join(f"{a['name']}: ${a['name']}" for a in args)
        result_type = _named(field["type"])
        if result_type["kind"] == "SCALAR" or result_type["kind"] == "ENUM":
            selection = ""
        elif result_type["kind"] == "UNION":
            selection = f" {{ {UNION_SELECTION} }}"
        else:
            selection = " { __typename }"
        query = f"{operation}({declared}) {{ {field['name']}({passed}){selection} }}"
        result = await client.execute(query, values)
        tried.append(field["name"])
        payload = (result.data or {}).get(field["name"])
        typed = isinstance(payload, dict) and payload.get("code") is not None
        if result.status >= 500 or "INTERNAL_SERVER_ERROR" in result.codes or not (typed or result.codes):
            failures.append((field["name"], result.status, result.codes, payload))
    return tried, failures


async def test_a_malformed_id_is_a_typed_error_in_every_mutation_and_query(stack: Stack) -> None:
    """A malformed ID is a user error (mutations: the result union must hold the error type the parsing
    raises) or a typed top-level error (queries), never an internal error."""
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "malformed")
    as_ada = anonymous.with_token(ada.token)
    schema = (await as_ada.data(INTROSPECT_ROOT, {"mutations": True}))["__schema"]
    mutations, failed_mutations = await _call_with_malformed_ids(as_ada, schema["root"]["fields"], "mutation")
    queries, failed_queries = await _call_with_malformed_ids(as_ada, schema["query"]["fields"], "query")
    assert len(mutations) >= 30 and len(queries) >= 10, (mutations, queries)
    assert not failed_mutations and not failed_queries, (failed_mutations, failed_queries)


def _type_text(type_: dict[str, object]) -> str:
    inner = type_.get("ofType")
    if type_["kind"] == "NON_NULL":
        return f"{_type_text(inner)}!"  # type: ignore[arg-type]
    if type_["kind"] == "LIST":
        return f"[{_type_text(inner)}]"  # type: ignore[arg-type]
    return str(type_["name"])
