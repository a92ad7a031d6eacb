"""What the failover drills share (PostgreSQL's in test_failover.py, Redis's in test_redis_failover.py):
senders that retry with the same nonce while answers say UNAVAILABLE, and a live client that resumes
from its last cursor whenever its stream ends, as real clients do."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    SEND_MESSAGE,
    create_server,
    default_channel,
    sign_up,
    subscribe_settled,
)

HISTORY = """query($c: ID!, $before: String) { messages(channelId: $c, first: 100, before: $before) {
  edges { node { id content } } pageInfo { hasNextPage endCursor } } }"""
SENDERS = 3
EVENTS = """subscription($c: ID!, $after: String) { messageEvents(channelId: $c, after: $after) {
  __typename ... on MessageCreated { cursor message { id author { username } channel { name } } } } }"""


class Drill:
    def __init__(self) -> None:
        self.acked: dict[str, tuple[str, float]] = {}  # content -> (message id, when acknowledged)
        self.errors: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def send_until_acked(self, client: GraphQLClient, channel_id: str, content: str) -> None:
        variables = {"input": {"channelId": channel_id, "content": content, "nonce": content}}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = await client.execute(SEND_MESSAGE, variables)  # the router itself stays up
            payload = (result.data or {}).get("sendMessage")
            if payload and payload["__typename"] == "Message":
                self.acked[content] = (payload["id"], time.monotonic())
                return
            codes = [str((e.get("extensions") or {}).get("code")) for e in result.errors] or [str(payload)]
            self.errors.update(codes)
            await asyncio.sleep(0.2)
        raise AssertionError(f"{content} was never acknowledged in 60 s; errors so far: {self.errors}")

    async def sender(self, client: GraphQLClient, channel_id: str, name: str) -> None:
        n = 0
        while not self.stop.is_set():
            await self.send_until_acked(client, channel_id, f"{name}-{n}")
            n += 1
            await asyncio.sleep(0.05)


class Listener:
    """A client following the channel live as a real one does: when its stream ends (an error, a
    completion, a dropped socket), it subscribes again from the last cursor it saw."""

    def __init__(self, client: GraphQLClient, channel_id: str) -> None:
        self.client, self.channel_id = client, channel_id
        self.delivered: Counter[str] = Counter()
        self.cursor: str | None = None
        self.endings: Counter[str] = Counter()

    async def follow(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.client.subscriptions() as connection:
                    variables = {"c": self.channel_id, "after": self.cursor}
                    operation = await subscribe_settled(connection, EVENTS, variables)
                    ready.set()
                    while True:
                        message = await operation.next(timeout=3600)
                        events = (message.get("payload") or {}).get("data") or {}
                        event = events.get("messageEvents") if message["type"] == "next" else None
                        if event and event["__typename"] == "MessageCreated":
                            self.delivered[event["message"]["id"]] += 1
                            self.cursor = event["cursor"]
                        if message["type"] != "next" or (message.get("payload") or {}).get("errors"):
                            self.endings[message["type"]] += 1
                            break
            except Exception as error:  # a dropped socket, a refused subscribe: try again, as a client does
                self.endings[type(error).__name__] += 1
            await asyncio.sleep(0.5)


async def history(client: GraphQLClient, channel_id: str) -> list[dict[str, Any]]:
    """The whole history, newest first, page by page towards older messages (`before`)."""
    nodes: list[dict[str, Any]] = []
    before = None
    while True:
        page = (await client.data(HISTORY, {"c": channel_id, "before": before}))["messages"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"] or not page["edges"]:
            return nodes
        before = page["pageInfo"]["endCursor"]


@dataclass
class Scene:
    """A public channel, its owner (also the live client) and SENDERS members sending to it."""

    owner: GraphQLClient
    channel_id: str
    senders: list[GraphQLClient]


async def set_scene(stack: Stack, name: str) -> Scene:
    owner = await sign_up(GraphQLClient(stack.router_url), name)
    as_owner = GraphQLClient(stack.router_url, owner.token)
    server = await create_server(as_owner, f"{name} drill", "PUBLIC")
    channel_id = (await default_channel(as_owner, server["id"]))["id"]
    senders = [as_owner]
    for _ in range(SENDERS - 1):
        member = await sign_up(GraphQLClient(stack.router_url), name)
        client = GraphQLClient(stack.router_url, member.token)
        await client.data(JOIN_SERVER, {"id": server["id"]})
        senders.append(client)
    return Scene(as_owner, channel_id, senders)


async def check_outcome(
    scene: Scene, drill: Drill, listener: Listener, following: asyncio.Task[None]
) -> None:
    """Every acknowledged message reaches the live client once (resuming from its cursor when its stream
    ended during the outage) and is stored once; clients saw no error but UNAVAILABLE."""
    acked_ids = {mid for mid, _when in drill.acked.values()}
    deadline = time.monotonic() + 60
    while not acked_ids <= set(listener.delivered) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    following.cancel()
    undelivered = acked_ids - set(listener.delivered)
    assert not undelivered, (
        f"{len(undelivered)} of {len(acked_ids)} acknowledged messages never delivered live; "
        f"stream endings {dict(listener.endings)}; client errors {dict(drill.errors)}"
    )
    assert not [mid for mid, count in listener.delivered.items() if count > 1], "delivered twice"

    stored = await history(scene.owner, scene.channel_id)
    contents = Counter(node["content"] for node in stored)
    ids = {node["id"] for node in stored}
    missing = [content for content, (mid, _) in drill.acked.items() if mid not in ids]
    assert not missing, f"acknowledged but lost: {missing[:10]} of {len(missing)}"
    twice = [content for content, count in contents.items() if count > 1]
    assert not twice, f"stored twice: {twice[:10]}"
    assert set(drill.errors) <= {"UNAVAILABLE"}, drill.errors


def longest_pause(drill: Drill, crashed_at: float) -> tuple[float, list[float]]:
    """The longest gap between acknowledgements around the crash, and the acknowledgements after it."""
    acks = sorted(when for _mid, when in drill.acked.values())
    pause = max((b - a for a, b in itertools.pairwise(acks) if b > crashed_at - 1), default=0.0)
    return pause, [when for when in acks if when > crashed_at]
