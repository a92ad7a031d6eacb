"""Message search through the router, on both stacks (the SQL backend: FTS5 embedded, tsvector full):
ranking, highlighting, filters, paging, permission filtering, tenancy, edit/delete/channel propagation,
hostile queries, typed input errors, reindexing, and an indexer that was down catching up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from db.ids import shard_of
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.messages.search.solr import SolrSearchBackend
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import DELETE as DELETE_SERVER
from tests.integration.flows import (
    DELETE_CHANNEL,
    JOIN_SERVER,
    KICK,
    SET_VISIBILITY,
    Users,
    _database,
    create_channel,
    create_server,
    mutate,
    send,
)
from tests.integration.message_flows import DELETE, EDIT
from tests.integration.search_flows import (
    DOCUMENTS,
    SEARCH,
    _documents,
    found_ids,
    ids,
    no_documents,
    search,
)
from tests.unit.search_cases import HOSTILE

OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""


@pytest.fixture(scope="session", params=["embedded", "full", "solr"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The search contract runs on the SQL backend in both modes and on Solr (the embedded stack with
    BEEP_SEARCH_BACKEND=solr and a real Solr node)."""
    return request.getfixturevalue(f"{request.param}_stack")


async def error_of(client: GraphQLClient, server_id: str, **args: Any) -> dict[str, Any]:
    result = await client.execute(SEARCH, {"s": server_id, **args})
    assert result.errors, result
    return result.errors[0].get("extensions", {})


async def community(stack: Stack, name: str) -> tuple[Users, GraphQLClient, Any, GraphQLClient, dict, dict]:
    users = Users(stack)
    _owner, as_owner = await users.new(f"{name}own")
    bob, as_bob = await users.new(f"{name}bob")
    server = await create_server(as_owner, f"Search {name}", "PUBLIC")
    channel = await create_channel(as_owner, server["id"], "general")
    assert (await as_bob.data(JOIN_SERVER, {"id": server["id"]}))["joinServer"]["__typename"] == "Server"
    return users, as_owner, bob, as_bob, server, channel


async def test_ranking_highlight_filters_and_paging(stack: Stack) -> None:
    _users, as_owner, bob, as_bob, server, channel = await community(stack, "rank")
    s = server["id"]
    dense = await send(as_owner, channel["id"], "kiwi kiwi kiwi")
    sparse = await send(as_owner, channel["id"], "one kiwi among a great many other words about fruit today")
    html = await send(as_bob, channel["id"], f"<b>Kiwi</b> & https://example.com/x for @{bob.username}")
    await send(as_owner, channel["id"], "nothing to see")
    await found_ids(as_bob, s, {dense["id"], sparse["id"], html["id"]}, q="kiwi")

    ranked = await search(as_bob, s, q="KIWI")
    assert ids(ranked)[0] == dense["id"]
    (marked,) = [e["highlight"] for e in ranked["edges"] if e["node"]["id"] == html["id"]]
    assert marked.startswith("&lt;b&gt;<mark>Kiwi</mark>&lt;/b&gt; &amp; https://example.com/x for &lt;@")
    assert "<b>" not in marked

    assert ids(await search(as_bob, s, q='"kiwi among"')) == [sparse["id"]]
    assert ids(await search(as_bob, s, q="kiwi", a=bob.user_id)) == [html["id"]]
    assert ids(await search(as_bob, s, m=[bob.user_id])) == [html["id"]]
    assert ids(await search(as_bob, s, q="kiwi", h=["LINK"])) == [html["id"]]
    assert ids(await search(as_bob, s, q="kiwi", h=["IMAGE"])) == []  # no attachments yet (see README)
    assert ids(await search(as_bob, s, q="kiwi", b="2000-01-01T00:00:00Z")) == []
    assert len(ids(await search(as_bob, s, q="kiwi", af="2000-01-01T00:00:00Z"))) == 3

    first = await search(as_bob, s, q="kiwi", f=2)
    assert first is not None and first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    rest = await search(as_bob, s, q="kiwi", f=2, cur=first["pageInfo"]["endCursor"])
    assert rest is not None and not rest["pageInfo"]["hasNextPage"] and rest["pageInfo"]["hasPreviousPage"]
    assert set(ids(first)) | set(ids(rest)) == {dense["id"], sparse["id"], html["id"]}
    assert len(ids(first)) + len(ids(rest)) == 3


async def test_only_readable_channels_of_members_and_never_other_servers(stack: Stack) -> None:
    users, as_owner, bob, as_bob, server, general = await community(stack, "perm")
    s = server["id"]
    private = await create_channel(as_owner, s, "private")
    assert (await mutate(as_owner, SET_VISIBILITY, channelId=private["id"], private=True))["__typename"] == (
        "Channel"
    )
    no_history = await create_channel(as_owner, s, "nohistory")
    deny = str(int(Permission.READ_MESSAGE_HISTORY))
    await as_owner.data(
        OVERWRITE, {"i": {"channelId": no_history["id"], "targetKind": "ROLE", "targetId": s, "deny": deny}}
    )
    public = await send(as_owner, general["id"], "mango for everyone")
    secret = await send(as_owner, private["id"], "mango in secret")
    unread = await send(as_owner, no_history["id"], "mango without history")
    # another tenant with the same word; its owner is also a member of ours
    _eve, as_eve = await users.new("permeve")
    other = await create_server(as_eve, "Elsewhere", "PUBLIC")
    other_channel = await create_channel(as_eve, other["id"], "general")
    foreign = await send(as_eve, other_channel["id"], "mango abroad")

    await found_ids(as_owner, s, {public["id"], secret["id"], unread["id"]}, q="mango")
    await found_ids(as_eve, other["id"], {foreign["id"]}, q="mango")
    assert ids(await search(as_bob, s, q="mango")) == [public["id"]]
    assert ids(await search(as_bob, s, q="mango", c=private["id"])) == []
    assert ids(await search(as_bob, s, q="mango", c=no_history["id"])) == []
    assert ids(await search(as_owner, s, q="mango", c=other_channel["id"])) == []  # not this server's
    assert await search(as_bob, other["id"], q="mango") is None  # not a member there
    assert ids(await search(as_owner, s, c=private["id"])) == [secret["id"]]

    # removed from the server: nothing at all
    kicked = await as_owner.data(KICK, {"s": s, "u": bob.user_id, "r": None})
    assert kicked["kickMember"]["__typename"] != "UserError"
    assert await search(as_bob, s, q="mango") is None
    assert await GraphQLClient(stack.router_url).data(SEARCH, {"s": s, "q": "mango"}) == {
        "searchMessages": None
    }


async def test_edits_deletes_and_deleted_channels_reach_the_index(stack: Stack) -> None:
    _users, as_owner, _bob, as_bob, server, channel = await community(stack, "edit")
    s = server["id"]
    doomed_channel = await create_channel(as_owner, s, "doomed")
    edited = await send(as_owner, channel["id"], "papaya at first")
    deleted = await send(as_owner, channel["id"], "papaya to delete")
    in_doomed = await send(as_owner, doomed_channel["id"], "papaya in a doomed channel")
    await found_ids(as_bob, s, {edited["id"], deleted["id"], in_doomed["id"]}, q="papaya")

    changed = await as_owner.data(EDIT, {"i": {"id": edited["id"], "content": "guava now"}})
    assert changed["editMessage"]["__typename"] == "Message"
    assert (await as_owner.data(DELETE, {"id": deleted["id"]}))["deleteMessage"]["__typename"] != "UserError"
    gone = await as_owner.data(DELETE_CHANNEL, {"id": doomed_channel["id"]})
    assert gone["deleteChannel"]["__typename"] == "ChannelDeleted"
    await found_ids(as_bob, s, set(), q="papaya")
    await found_ids(as_bob, s, {edited["id"]}, q="guava")
    highlighted = await search(as_bob, s, q="guava")
    assert highlighted is not None and highlighted["edges"][0]["highlight"] == "<mark>guava</mark> now"
    await no_documents(stack, s, doomed_channel["id"])

    # a destroyed server leaves no documents behind
    assert await _documents(stack, s) == 1
    destroyed = await as_owner.data(DELETE_SERVER, {"s": s, "n": "Search edit"})
    assert destroyed["deleteServer"]["__typename"] == "ServerDeletion"
    await no_documents(stack, s)


async def _wipe(stack: Stack, server_id: str) -> None:
    """Lose a server's documents behind Beep's back (what `beep search reindex` repairs)."""
    solr_url = stack.env.get("BEEP_SEARCH_SOLR_URL")
    if solr_url:
        for core in await SolrSearchBackend(solr_url).cores(refresh=True):
            if core.startswith(f"s{server_id}_c"):
                async with httpx.AsyncClient() as client:
                    wiped = await client.post(
                        f"{solr_url}/{core}/update",
                        params={"commit": "true"},
                        json={"delete": {"query": "*:*"}},
                    )
                assert wiped.is_success
        return
    database = _database(stack)
    try:
        session = database.shard_session(shard_of(int(server_id)))
        async with session, session.begin():
            await session.execute(sa.delete(DOCUMENTS).where(DOCUMENTS.c.server_id == int(server_id)))
    finally:
        await database.dispose()


async def test_hostile_queries_never_leave_the_channel_filter(stack: Stack) -> None:
    _users, as_owner, _bob, as_bob, server, general = await community(stack, "inj")
    s = server["id"]
    private = await create_channel(as_owner, s, "vault")
    await mutate(as_owner, SET_VISIBILITY, channelId=private["id"], private=True)
    texts = [f"lychee {h}" for h in HOSTILE]
    hidden = [await send(as_owner, private["id"], t) for t in texts]
    visible = await send(as_owner, general["id"], "lychee in public")
    await found_ids(as_owner, s, {visible["id"], *(m["id"] for m in hidden)}, q="lychee")
    for text in HOSTILE:
        for q in (text, f"lychee {text}", f'"{text}"'):
            found = await search(as_bob, s, q=q)
            assert set(ids(found)) <= {visible["id"]}, q
            found = await search(as_bob, s, q=q, c=private["id"])
            assert ids(found) == [], q


async def test_bad_input_gets_typed_errors(stack: Stack) -> None:
    _users, _as_owner, bob, as_bob, server, _channel = await community(stack, "bad")
    s = server["id"]
    too_long = await error_of(as_bob, s, q="x" * 513)
    assert (
        too_long["code"] == "BAD_USER_INPUT"
        and too_long["argument"] == "query"
        and too_long["maxLength"] == 512
    )
    assert (await error_of(as_bob, s, q=" ".join(f"w{n}" for n in range(33))))["argument"] == "query"
    assert (await error_of(as_bob, s, b="2026-01-01T00:00:00Z", af="2026-02-01T00:00:00Z"))[
        "argument"
    ] == "before"
    assert (await error_of(as_bob, s, b="2026-01-01T00:00:00"))["argument"] == "before"
    assert (await error_of(as_bob, s, f=0))["argument"] == "first"
    assert (await error_of(as_bob, s, f=51))["argument"] == "first"
    assert (await error_of(as_bob, s, cur="not-a-cursor"))["argument"] == "cursor"
    assert (await error_of(as_bob, s, m=[bob.user_id] * 11))["argument"] == "mentions"
    assert (await error_of(as_bob, s, a="x'; --"))["argument"] == "author"
    assert (await error_of(as_bob, "not-an-id"))["argument"] == "serverId"
    result = await as_bob.execute(SEARCH, {"s": s, "h": ["VIDEO"]})
    assert result.errors  # not a SearchHas value: rejected by GraphQL validation
    assert ids(await search(as_bob, s, q="!!! ***")) == []  # nothing searchable: nothing found


async def test_reindex_rebuilds_and_a_stopped_indexer_catches_up(stack: Stack) -> None:
    _users, as_owner, _bob, as_bob, server, channel = await community(stack, "reidx")
    s = server["id"]
    first = await send(as_owner, channel["id"], "durian one")
    await found_ids(as_bob, s, {first["id"]}, q="durian")

    await _wipe(stack, s)
    assert ids(await search(as_bob, s, q="durian")) == []
    for target in (["--server", s], ["--channel", channel["id"]]):
        done = subprocess.run(
            [sys.executable, "-m", "beep.cli", "search", "reindex", *target],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=os.getcwd(),
        )
        assert done.returncode == 0, done.stderr
        assert "reindexed 1 messages" in done.stdout
        assert ids(await search(as_bob, s, q="durian")) == [first["id"]]

    if stack.mode != "full":
        return
    stack.kill("worker")  # a crash: messages committed meanwhile wait in the outbox
    later = [await send(as_owner, channel["id"], f"durian later {n}") for n in range(5)]
    await asyncio.sleep(1.0)  # a window that proves nothing is indexed while the worker is down: keep
    assert ids(await search(as_bob, s, q="later")) == []
    stack.restart_worker()
    await found_ids(as_bob, s, {m["id"] for m in later}, q="durian later")
