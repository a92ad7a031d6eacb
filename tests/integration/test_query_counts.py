"""N+1 guards: entity references and nested fields are batched by DataLoaders, so the number of SQL
statements does not grow with the number of items. The app runs in this process (a real uvicorn server
on loopback) so every statement can be counted."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine

from beep.registry import all_definitions
from db.engines import Database
from db.migrate import upgrade
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.app import create_app
from tests.harness.ports import free_port
from tests.integration.message_flows import INTERNAL, SECRET, post, sign_up

pytestmark = pytest.mark.embedded


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # The shard locator refreshes its per-process cache every 2 s (db/locator.py): not per-request work.
        if "tenant_moves" not in statement:
            self.statements.append(statement)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("counts")
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        internal_secret=SECRET,
        port=port,
        issuer_url=f"http://127.0.0.1:{port}/users",
        attachment_sweep_seconds=0,  # no background statements among those counted
        message_send_limit=10_000,
    )
    database = Database(settings.resolved_directory_url, settings.shard_map)

    async def migrate() -> None:
        await upgrade(database)
        await database.dispose()

    asyncio.run(migrate())
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(all_definitions(), settings, mounted=True),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the app did not start"
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def executed(
    base_url: str, subgraph: str, query: str, variables: dict[str, object], token: str | None = None
) -> tuple[dict, list[str]]:
    """The answer and the SQL statements the request ran."""
    counter = StatementCounter()
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        data = post(base_url, subgraph, query, variables, token)
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
    return data, counter.statements


def counted(
    base_url: str, subgraph: str, query: str, variables: dict[str, object], token: str | None = None
) -> tuple[dict, int]:
    data, statements = executed(base_url, subgraph, query, variables, token)
    return data, len(statements)


def server_with_channel(base_url: str, token: str, name: str, **server: object) -> tuple[dict, dict]:
    """A new server of the user's and a text channel in it (ids only)."""
    created = post(
        base_url,
        "servers",
        "mutation($input: CreateServerInput!) { createServer(input: $input) { ... on Server { id } } }",
        {"input": {"name": name, **server}},
        token,
    )["createServer"]
    channel = post(
        base_url,
        "channels",
        "mutation($i: CreateChannelInput!) { createChannel(input: $i) { ... on Channel { id } } }",
        {"i": {"serverId": created["id"], "name": name.lower()}},
        token,
    )["createChannel"]
    return created, channel


def test_user_references_are_one_query_whatever_their_number(base_url: str) -> None:
    ids = [sign_up(base_url, f"user{i}")[1] for i in range(12)]
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { username } } }"
    few, few_count = counted(
        base_url, "users", query, {"r": [{"__typename": "User", "id": i} for i in ids[:2]]}
    )
    many, many_count = counted(
        base_url, "users", query, {"r": [{"__typename": "User", "id": i} for i in ids]}
    )
    assert (
        len(few["_entities"]) == 2
        and len(many["_entities"]) == 12
        and all(e is not None for e in many["_entities"])
    )
    assert few_count == many_count == 1


def test_history_with_replies_is_constant_in_page_size(base_url: str) -> None:
    token, _ = sign_up(base_url, "chatty")
    create_server = (
        "mutation($input: CreateServerInput!) { createServer(input: $input) { ... on Server { id } } }"
    )
    server = post(base_url, "servers", create_server, {"input": {"name": "Server"}}, token)["createServer"]
    create_channel = (
        "mutation($i: CreateChannelInput!) { createChannel(input: $i) { ... on Channel { id } } }"
    )
    channel = post(
        base_url, "channels", create_channel, {"i": {"serverId": server["id"], "name": "c"}}, token
    )["createChannel"]
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { ... on Message { id } } }"
    previous = None
    sent_ids = []
    for i in range(20):
        sent = post(
            base_url,
            "messages",
            send,
            {"i": {"channelId": channel["id"], "content": f"m{i}", "replyToId": previous}},
            token,
        )
        previous = sent["sendMessage"]["id"]
        sent_ids.append(previous)

    query = """query($c: ID!, $n: Int) { messages(channelId: $c, first: $n) {
                 edges { node { content replyTo { content author { id } } } } } }"""
    small, small_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 2}, token)
    large, large_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 20}, token)
    assert [e["node"]["replyTo"]["content"] for e in large["messages"]["edges"][:2]] == ["m18", "m17"]
    assert len(small["messages"]["edges"]) == 2
    # channel access (channel, server, roles, overwrites: 4), the outbox head (the page's eventCursor),
    # the page, the replied-to messages and their channels' access (4 more): the same for 2 as for 20
    assert small_count == large_count <= 11

    entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Message { id content } } }"
    two, two_count = counted(
        base_url,
        "messages",
        entities,
        {"r": [{"__typename": "Message", "id": i} for i in sent_ids[:2]]},
        token,
    )
    twenty, twenty_count = counted(
        base_url, "messages", entities, {"r": [{"__typename": "Message", "id": i} for i in sent_ids]}, token
    )
    assert [e["content"] for e in two["_entities"]] == ["m0", "m1"]
    assert [e["content"] for e in twenty["_entities"]] == [f"m{i}" for i in range(20)]
    assert two_count == twenty_count <= 5  # the messages, then their channels' access


def test_a_page_of_50_messages_with_authors_replies_and_reactions_is_constant(base_url: str) -> None:
    """The issue's N+1 guard: a full page of 50 messages, each a reply with reactions by several members,
    costs the messages subgraph as many statements as a page of 5. (Authors are User references the
    router resolves with one users `_entities` call: test_user_references_are_one_query_whatever...)"""
    token, _ = sign_up(base_url, "pager")
    other_token, other_id = sign_up(base_url, "reactor")
    server, channel = server_with_channel(base_url, token, "Pages", visibility="PUBLIC")
    post(
        base_url,
        "servers",
        "mutation($s: ID!) { joinServer(serverId: $s) { __typename } }",
        {"s": server["id"]},
        other_token,
    )
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { ... on Message { id } } }"
    react = "mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) { __typename } }"
    previous = None
    for i in range(55):
        content = f"m{i} <@{other_id}>"
        sent = post(
            base_url,
            "messages",
            send,
            {"i": {"channelId": channel["id"], "content": content, "replyToId": previous}},
            token,
        )["sendMessage"]
        previous = sent["id"]
        for who, emoji in ((token, "👍"), (other_token, "👍"), (other_token, "🎉")):
            post(base_url, "messages", react, {"m": previous, "e": emoji}, who)

    query = """query($c: ID!, $n: Int) { messages(channelId: $c, first: $n) { eventCursor
                 edges { node { content author { id } authorBlocked mentions { id }
                   replyTo { content author { id } authorBlocked }
                   reactions { emoji count me } } } } }"""
    small, small_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 5}, token)
    large, large_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 50}, token)
    edges = large["messages"]["edges"]
    assert len(edges) == 50 and len(small["messages"]["edges"]) == 5
    assert edges[0]["node"]["reactions"] == [
        {"emoji": "👍", "count": 2, "me": True},
        {"emoji": "🎉", "count": 1, "me": False},
    ]
    assert edges[0]["node"]["replyTo"]["content"].startswith("m53")
    assert small_count == large_count, (small_count, large_count)


def test_history_with_attachments_is_constant_in_page_size(base_url: str) -> None:
    import json

    token, _ = sign_up(base_url, "filer")
    create_server = (
        "mutation($input: CreateServerInput!) { createServer(input: $input) { ... on Server { id } } }"
    )
    server = post(base_url, "servers", create_server, {"input": {"name": "Files"}}, token)["createServer"]
    create_channel = (
        "mutation($i: CreateChannelInput!) { createChannel(input: $i) { ... on Channel { id } } }"
    )
    channel = post(
        base_url, "channels", create_channel, {"i": {"serverId": server["id"], "name": "f"}}, token
    )["createChannel"]
    send = """mutation($i: SendMessageInput!, $files: [Upload!]) {
                sendMessage(input: $i, files: $files) { ... on Message { id } } }"""
    for i in range(20):
        operations = {
            "query": send,
            "variables": {"i": {"channelId": channel["id"], "content": f"m{i}"}, "files": [None, None]},
        }
        response = httpx.post(
            f"{base_url}/messages/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.files.0"], "1": ["variables.files.1"]}),
            },
            files=[("0", (f"a{i}.txt", b"a", "text/plain")), ("1", (f"b{i}.txt", b"b", "text/plain"))],
            headers={"authorization": f"Bearer {token}", "GraphQL-Require-Preflight": "1", **INTERNAL},
            timeout=30,
        )
        assert response.json()["data"]["sendMessage"]["id"], response.text

    query = """query($c: ID!, $n: Int) { messages(channelId: $c, first: $n) {
                 edges { node { content attachments { filename size url thumbnailUrl } } } } }"""
    small, small_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 2}, token)
    large, large_count = counted(base_url, "messages", query, {"c": channel["id"], "n": 20}, token)
    assert [a["filename"] for a in large["messages"]["edges"][0]["node"]["attachments"]] == [
        "a19.txt",
        "b19.txt",
    ]
    assert len(small["messages"]["edges"]) == 2
    # channel access (4), the outbox head (eventCursor), the page, the messages' visibility again
    # (1 + 4), their attachments (1)
    assert small_count == large_count <= 12


def test_editing_a_message_computes_its_access_once(base_url: str) -> None:
    """`access_message` hands the edit the access it checked: the channel's permissions are computed once
    (the edit used to compute them a second time for its mentions)."""
    token, _ = sign_up(base_url, "editor")
    _server, channel = server_with_channel(base_url, token, "Edits")
    sent = post(
        base_url,
        "messages",
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { ... on Message { id } } }",
        {"i": {"channelId": channel["id"], "content": "first"}},
        token,
    )["sendMessage"]
    edit = "mutation($i: EditMessageInput!) { editMessage(input: $i) { ... on Message { content } } }"
    data, statements = executed(
        base_url, "messages", edit, {"i": {"id": sent["id"], "content": "second"}}, token
    )
    assert data["editMessage"] == {"content": "second"}
    # One access computation: one read of the channel's overwrites (the last of its four statements).
    assert sum("channel_overwrites" in s for s in statements) == 1, statements
