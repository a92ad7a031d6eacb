"""Two replicas of the messages subgraph share Redis: a subscriber on one hears a send through the other."""

from __future__ import annotations

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, MESSAGE_EVENTS, create_channel, create_server, send, sign_up

pytestmark = pytest.mark.full


async def test_subscriber_on_one_replica_receives_message_sent_through_the_other(full_stack: Stack) -> None:
    via_a = GraphQLClient(full_stack.router_url)  # router A → messages replica 1
    via_b = GraphQLClient(full_stack.second_router_url)  # router B → messages replica 2
    ada = await sign_up(via_a, "ada")
    bob = await sign_up(via_b, "bob")
    channel = await create_channel(
        via_a.with_token(ada.token), (await create_server(via_a.with_token(ada.token)))["id"]
    )
    await via_b.with_token(bob.token).data(JOIN_SERVER, {"id": channel["server"]["id"]})

    async with (
        via_b.with_token(bob.token).subscriptions() as on_replica_2,
        via_a.with_token(ada.token).subscriptions() as on_replica_1,
    ):
        variables = {"channelId": channel["id"]}
        heard_on_2 = await on_replica_2.subscribe(MESSAGE_EVENTS, variables, live_signal=True)
        heard_on_1 = await on_replica_1.subscribe(MESSAGE_EVENTS, variables, live_signal=True)
        # Both replicas' subgraphs have subscribed to the bus once their live signals came.
        assert await heard_on_2.live() and await heard_on_1.live()

        sent_via_1 = await send(via_a.with_token(ada.token), channel["id"], "from replica 1")
        sent_via_2 = await send(via_b.with_token(bob.token), channel["id"], "from replica 2")

        for op in (heard_on_1, heard_on_2):
            got = [(await op.next())["payload"]["data"]["messageEvents"]["message"] for _ in range(2)]
            assert [m["id"] for m in got] == [sent_via_1["id"], sent_via_2["id"]]
            assert [m["author"]["username"] for m in got] == [ada.username, bob.username]
