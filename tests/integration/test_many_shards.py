"""One request that spans many logical shards: each loader batch reads shard after shard, holding one
connection at a time. (The full stack runs with BEEP_DB_POOL_SIZE=2, so holding a connection per shard —
32 shards share each physical database there — would time out here.)"""

from __future__ import annotations

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import DEFAULT_CHANNEL_NAMES, create_server, sign_up, unique


async def test_a_page_of_servers_across_shards_resolves_every_subgraph(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    tag = unique("shardy")
    servers = [await create_server(as_ada, f"{tag} {i:02d}") for i in range(14)]  # each with its channels

    page = await as_ada.data(
        """query($q: String!) { discoverServers(query: $q, first: 20) { edges { node {
             name memberCount viewerIsMember myPermissions owner { username } channels { name } } } } }""",
        {"q": tag},
    )
    nodes = [edge["node"] for edge in page["discoverServers"]["edges"]]
    assert sorted(n["name"] for n in nodes) == sorted(s["name"] for s in servers)
    for node in nodes:
        assert node["memberCount"] == 1 and node["viewerIsMember"] is True
        assert node["owner"] == {"username": ada.username} and node["channels"] == DEFAULT_CHANNEL_NAMES
