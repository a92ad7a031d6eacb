"""The router's two runtimes (router/runtime.ts, BEEP_ROUTER_RUNTIME) answer alike.

Every other test drives the default, `router`: queries and mutations on Hive Router's runtime, subscriptions
on the gateway's stitching runtime. A second router with `stitching` (every operation on the stitching
runtime) in front of the same subgraphs must give the same answers, the same error codes and the same live
events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beep.router import ROUTER_DIR, router_node
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import MESSAGE_EVENTS, SEND_MESSAGE, subscribe_settled
from tests.integration.message_flows import created, guild

HISTORY = """query($c: ID!) { messages(channelId: $c, first: 10) {
  edges { cursor node { id content author { id username } channel { id name } } } } }"""
# A literal the messages subgraph refuses (not a date): the router runtime sends literals as written.
BAD_LITERAL = """query($c: ID!) { messages(channelId: $c, before: "not-a-date") { edges { cursor } } }"""
# A variable of the wrong type: refused before execution, HTTP 400, by either runtime.
BAD_VARIABLE = """query($c: ID!, $n: Int) { messages(channelId: $c, first: $n) { edges { cursor } } }"""


def _without_ids(answer: dict[str, Any]) -> dict[str, Any]:
    message = dict(answer["sendMessage"])
    for key in ("id", "cursor", "content"):
        message.pop(key)
    return message


async def test_stitching_answers_what_the_default_runtime_answers(embedded_stack: Stack) -> None:
    stack = embedded_stack
    default = stack.router_url
    stitching = stack.start_router_beside("router-stitching", {"BEEP_ROUTER_RUNTIME": "stitching"})
    owner, ((_account, member),), _server, channel = await guild(stack, 1)
    by_runtime = {url: GraphQLClient(url, owner.token) for url in (default, stitching)}

    async with GraphQLClient(stitching, member.token).subscriptions() as live:
        operation = await subscribe_settled(live, MESSAGE_EVENTS, {"channelId": channel})
        sent = {}
        for url, client in by_runtime.items():
            sent[url] = await client.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": url}})
            assert sent[url]["sendMessage"]["content"] == url
        assert _without_ids(sent[default]) == _without_ids(sent[stitching])
        events = await created(operation, 2)
        assert [e["message"]["content"] for e in events] == [default, stitching]

    histories = [await client.data(HISTORY, {"c": channel}) for client in by_runtime.values()]
    assert histories[0] == histories[1]
    assert sorted(e["node"]["content"] for e in histories[0]["messages"]["edges"]) == sorted(
        [default, stitching]
    )

    for url, client in by_runtime.items():
        literal = await client.execute(BAD_LITERAL, {"c": channel})
        assert literal.codes == ["BAD_USER_INPUT"], (url, literal)
        variable = await client.execute(BAD_VARIABLE, {"c": channel, "n": "ten"})
        assert variable.status == 400 and variable.data is None, (url, variable)


def test_the_router_runs_on_the_node_its_package_pins(embedded_stack: Stack) -> None:
    """What the suite drives is what ships: the gateway process runs router/package.json's Node when npm
    installed it on this machine (beep/router.py `router_node`)."""
    (process,) = [p for name, p in embedded_stack.processes if name == "router"]
    runs = Path(f"/proc/{process.pid}/exe").resolve()
    assert runs == Path(router_node()).resolve()
    if (ROUTER_DIR / "node_modules" / ".bin" / "node").exists():
        assert runs.is_relative_to(ROUTER_DIR.resolve() / "node_modules"), runs
