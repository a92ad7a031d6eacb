"""Where the CPU goes: `python -m bench.probe [--mode embedded|full]`.

Not a benchmark of its own: a few paired measurements (the same request with and without one ingredient,
sequential, CPU time per request read from /proc) that explain the numbers bench.run reports. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ["BEEP_ROUTER_DEDUPE"] = "0"

from bench.live import LiveSettings, NodeReceiver, Subscriber, analyse, send_paced
from bench.load import Gql, closed_loop, pooled_client
from bench.procs import CpuMeter, wait_for_quiet
from bench.run import HISTORY, Seed, Settings, seed, send_operation
from tests.harness.stack import Stack, start_embedded, start_full
from tests.integration.flows import MESSAGE_EVENTS, SEND_MESSAGE

TYPENAME = "query { __typename }"
ENTITIES = """
query Entities($r: [_Any!]!) { _entities(representations: $r) { ... on User { id username } } }"""
SEND_BARE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { __typename ... on Message { id content cursor } ... on UserError { code } }
}"""
HISTORY_BARE = """
query History($channelId: ID!, $first: Int) {
  messages(channelId: $channelId, first: $first) { edges { cursor node { id content createdAt } } }
}"""
EVENTS_BARE = """
subscription Events($channelId: ID!) {
  messageEvents(channelId: $channelId) { __typename ... on MessageCreated { message { id content } } }
}"""


async def measure(
    meter: CpuMeter, name: str, count: int, call: Callable[[int, int], Awaitable[None]], concurrency: int = 1
) -> dict[str, Any]:
    await closed_loop(concurrency, 10, 30, call)  # warm-up
    before = meter.snapshot()
    outcome = await closed_loop(concurrency, count, 60, call)
    after = meter.snapshot()
    wall = after.wall - before.wall
    ok = len(outcome.latencies_ms)
    usage = CpuMeter.usage(before, after)
    cores: dict[str, float] = usage["cores_by_process"]  # type: ignore[assignment]
    result = {
        "case": name,
        "ok": ok,
        "errors": outcome.errors,
        "error_samples": outcome.error_samples[:1],
        "p50_ms": outcome.summary()["latency"].get("p50_ms"),
        "cpu_ms_per_request": {k: round(v * wall / max(ok, 1) * 1000, 2) for k, v in cores.items()},
        "other_processes_cores": usage["other_processes_cores"],
    }
    print(json.dumps(result), flush=True)
    return result


async def live_cost(
    stack: Stack, meter: CpuMeter, gql: Gql, data: Seed, query: str, subscribers: int, label: str
) -> dict[str, Any]:
    """CPU per delivered event at a low send rate (5/s, 40 messages), Node receiver."""
    subs = [Subscriber(stack.router_url, token) for token in data.listeners[:subscribers]]
    prefix = f"probe-{secrets.token_hex(2)} "
    receiver = NodeReceiver(subs, query, data.channel_id, prefix, stack.workdir / "probe-node.log")
    try:
        await receiver.start(10)
        for attempt in range(30):
            await gql.data(SEND_MESSAGE, {"input": {"channelId": data.channel_id, "content": f"p{attempt}"}},
                           data.senders[0])  # fmt: skip
            if await receiver.wait_primed(1.0):
                break
        await asyncio.sleep(1.0)
        before = meter.snapshot()
        sent_at, *_ = await send_paced(
            gql, data.senders[0], data.channel_id, prefix, LiveSettings(40, 5.0, 60, 10)
        )
        logs = await receiver.finish(len(sent_at), 10)
        after = meter.snapshot()
    finally:
        await receiver.close()
    wall = after.wall - before.wall
    usage = CpuMeter.usage(before, after)
    cores: dict[str, float] = usage["cores_by_process"]  # type: ignore[assignment]
    summary = analyse(sent_at, logs)
    deliveries = max(summary["delivered"], 1)
    result = {
        "case": label,
        "subscribers": subscribers,
        "delivered": summary["delivered"],
        "lost": summary["lost"],
        "p50_ms": summary["send_to_receive"].get("p50_ms"),
        "cpu_ms_per_message": {k: round(v * wall / max(len(sent_at), 1) * 1000, 1) for k, v in cores.items()},
        "cpu_ms_per_delivery": {k: round(v * wall / deliveries * 1000, 2) for k, v in cores.items()},
        "other_processes_cores": usage["other_processes_cores"],
    }
    print(json.dumps(result), flush=True)
    return result


async def probe(stack: Stack) -> list[dict[str, Any]]:
    meter = CpuMeter()
    for name, process in stack.processes:
        meter.add(name, process.pid)
    meter.add("bench-client", os.getpid(), tree=False)
    settings = Settings.make(True, ["node"])
    settings.subscribers = 10
    out: list[dict[str, Any]] = []
    async with pooled_client(16) as http:
        router = Gql(http, stack.router_url)
        data = await seed(router, settings)
        token = data.senders[0]
        me = await router.data("query { me { id } }", {}, token)
        user_id = me["me"]["id"]
        for _ in range(60):  # a page of history
            await send_operation(router, data, "probe")(0, 0)
        direct_users = Gql(http, stack.subgraph_urls["users"], stack.internal_headers)
        direct_messages = Gql(http, stack.subgraph_urls["messages"], stack.internal_headers)
        entity = {"r": [{"__typename": "User", "id": user_id}]}
        channel = {"channelId": data.channel_id, "first": 50}
        send_x = {"input": {"channelId": data.channel_id, "content": "x"}}

        async def call(gql: Gql, query: str, variables: dict[str, Any], auth: bool = True) -> None:
            await gql.data(query, variables, token if auth else None)

        cases: list[tuple[str, Callable[[int, int], Awaitable[None]]]] = [
            ("router { __typename }, anonymous", lambda w, i: call(router, TYPENAME, {}, False)),
            ("router { __typename }, with JWT", lambda w, i: call(router, TYPENAME, {})),
            ("users subgraph direct { __typename }, with JWT", lambda w, i: call(direct_users, TYPENAME, {})),
            ("users subgraph direct _entities(1 User)", lambda w, i: call(direct_users, ENTITIES, entity)),
            ("messages subgraph direct sendMessage (no author)",
             lambda w, i: call(direct_messages, SEND_BARE, send_x)),
            ("router sendMessage (no author)",
             lambda w, i: call(router, SEND_BARE, send_x)),
            ("router sendMessage (with author, as bench.run)", send_operation(router, data, "probe")),
            ("messages subgraph direct history 50 (no author)",
             lambda w, i: call(direct_messages, HISTORY_BARE, channel)),
            ("router history 50 (no author)", lambda w, i: call(router, HISTORY_BARE, channel)),
            ("router history 50 (with author, as bench.run)", lambda w, i: call(router, HISTORY, channel)),
        ]  # fmt: skip
        for name, case in cases:
            await wait_for_quiet(5)
            out.append(await measure(meter, name, 150, case))
        for query, subscribers, label in [
            (EVENTS_BARE, 1, "live, 1 subscriber, event without foreign fields"),
            (EVENTS_BARE, 10, "live, 10 subscribers, event without foreign fields"),
            (MESSAGE_EVENTS, 10, "live, 10 subscribers, MESSAGE_EVENTS (author username, channel name)"),
        ]:
            await wait_for_quiet(5)
            out.append(await live_cost(stack, meter, router, data, query, subscribers, label))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("--mode", choices=["embedded", "full"], default="embedded")
    args = parser.parse_args()
    began = time.monotonic()
    stack = start_full() if args.mode == "full" else start_embedded()
    try:
        asyncio.run(probe(stack))
    finally:
        stack.stop()
    print(f"total {time.monotonic() - began:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
