"""Prometheus metrics on a running stack: a request and a subscription through the router move the
counters of every process they touch (the router, the subgraphs, the worker), every process's /metrics
passes the naming and label checks, and the router's metrics are on its internal port only: its public
URL does not serve them to anonymous callers."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx
import pytest

from tests.deploy.chart import promtool
from tests.harness.client import GraphQLClient
from tests.harness.scraped import Samples, moved, scrape, total
from tests.harness.stack import Stack
from tests.integration.flows import MESSAGE_EVENTS, SEND_MESSAGE, subscribe_settled
from tests.integration.message_flows import created, guild
from tests.unit.metrics_checks import check_exposition

TOUCH_FRIENDS_AND_WEBHOOKS = "query($c: ID!) { friends { id } webhooks(channelId: $c) { id } }"


def targets(stack: Stack) -> dict[str, str]:
    """Every process's /metrics URL, by process name."""
    router = stack.router_envs["router-a" if stack.mode == "full" else "router"]
    router_metrics = f"http://127.0.0.1:{router['BEEP_ROUTER_METRICS_PORT']}/metrics"
    if stack.mode == "full":
        found = {name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.subgraph_ports.items()}
        found["worker"] = f"http://127.0.0.1:{stack.worker_port}/metrics"
    else:  # one process: every subgraph and the worker, /metrics at its root
        base = urlsplit(stack.subgraph_urls["users"])
        found = {"beep-all": f"http://127.0.0.1:{base.port}/metrics"}
    return found | {"router": router_metrics}


def only_families(text: str, prefix: str) -> str:
    """The lines of an exposition that belong to families named `prefix*`."""
    kept = []
    for line in text.splitlines():
        name = line.split(" ")[2] if line.startswith(("# HELP ", "# TYPE ")) else line
        if name.startswith(prefix):
            kept.append(line)
    return "\n".join(kept) + "\n"


def scrape_all(urls: dict[str, str]) -> dict[str, Samples]:
    return {name: scrape(url)[1] for name, url in urls.items()}


def processes_of(samples: dict[str, Samples], subgraph: str) -> Iterable[str]:
    """The processes serving `subgraph` (full mode: e.g. messages and messages-2; embedded: the one)."""
    return [name for name in samples if name.split("-")[0] in (subgraph, "beep")]


def across(
    before: dict[str, Samples], after: dict[str, Samples], serving: str, name: str, **labels: str
) -> float:
    """How much `name` moved over the processes serving the subgraph `serving`."""
    return sum(moved(before[p], after[p], name, **labels) for p in processes_of(after, serving))


async def test_a_request_and_a_subscription_move_every_process_counters(stack: Stack) -> None:
    urls = targets(stack)
    owner, ((_member, member_client),), _server, channel = await guild(stack, 1)
    before = scrape_all(urls)

    async with member_client.subscriptions() as connection:
        operation = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel})
        during = scrape_all(urls)
        data = await owner.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "measured"}})
        assert data["sendMessage"]["__typename"] == "Message", data
        await created(operation, 1)
        await owner.data(TOUCH_FRIENDS_AND_WEBHOOKS, {"c": channel})
        # Still subscribed: the running subscription and its socket are counted by a messages process.
        running = sum(
            total(during[p], "beep_graphql_subscriptions", subgraph="messages")
            for p in processes_of(during, "messages")
        )
        sockets = sum(
            total(during[p], "beep_websocket_connections", subgraph="messages")
            for p in processes_of(during, "messages")
        )
        assert running >= 1 and sockets >= 1, (running, sockets)
    after = scrape_all(urls)

    # The router: the mutation (ok), the subscription, and its calls to the messages subgraph.
    router_before, router_after = before["router"], after["router"]
    ok_mutations = moved(
        router_before,
        router_after,
        "beep_router_graphql_requests_total",
        operation_type="mutation",
        outcome="ok",
    )
    assert ok_mutations >= 1
    assert (
        moved(
            router_before, router_after, "beep_router_graphql_requests_total", operation_type="subscription"
        )
        >= 1
    )
    assert (
        moved(
            router_before,
            router_after,
            "beep_router_subgraph_request_duration_seconds_count",
            subgraph="messages",
            operation_type="mutation",
        )
        >= 1
    )
    assert (
        moved(router_before, router_after, "beep_router_http_request_duration_seconds_count", method="POST")
        >= 2
    )
    assert total(router_after, "process_start_time_seconds") > 0

    # Each subgraph served an operation: the mutation in messages, the query in friends and webhooks.
    sent = across(
        before, after, "messages", "beep_graphql_requests_total", operation_type="mutation", outcome="ok"
    )
    assert sent >= 1
    assert across(before, after, "messages", "beep_graphql_request_duration_seconds_count") >= 1
    assert across(before, after, "messages", "beep_bus_events_delivered_total") >= 1
    for subgraph in ("friends", "webhooks"):
        served = across(before, after, subgraph, "beep_graphql_requests_total", subgraph=subgraph)
        assert served >= 1, subgraph

    # The worker (its own process in full mode) relayed the message and reports the outbox and its pools.
    worker = "worker" if stack.mode == "full" else "beep-all"
    assert moved(before[worker], after[worker], "beep_outbox_events_relayed_total") >= 1
    stores = {dict(ls)["store"] for (n, ls) in after[worker] if n == "beep_outbox_backlog_events"}
    assert "directory" in stores and "0" in stores, stores
    consumers = {dict(ls)["consumer"] for (n, ls) in after[worker] if n == "beep_outbox_consumer_lag_seconds"}
    assert {"search-index", "notifications"} <= consumers, consumers
    for name, samples in after.items():
        if name == "router":
            continue
        assert total(samples, "beep_db_pool_max_connections", database="directory") > 0, name
    if stack.mode == "full":  # PostgreSQL's queue pools time their checkouts (SQLite's are not timed)
        waited = across(before, after, "messages", "beep_db_pool_wait_seconds_count")
        assert waited >= 1, waited


async def test_every_process_exposes_conventional_bounded_metrics(stack: Stack) -> None:
    owner, ((_member, _client),), _server, channel = await guild(stack, 1)
    await owner.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "named"}})
    for name, url in targets(stack).items():
        text, _samples = scrape(url)
        prefix = "beep_router_" if name.startswith("router") else "beep_"
        assert prefix in text, name
        assert check_exposition(text, prefix) == [], name
        ours = only_families(text, prefix)
        linted = promtool("check", "metrics", stdin=ours)  # Prometheus' own linter
        assert linted.returncode == 0, (name, linted.stdout + linted.stderr)
        # No client-chosen operation name ("Send", "Events"), no URL, no header as a label.
        for label in ("operationName=", "operation_name=", "url=", "requestHeaders="):
            assert label not in text, (name, label)


async def test_the_routers_metrics_are_not_served_on_its_public_url(stack: Stack) -> None:
    public = stack.router_url.removesuffix("/graphql")
    for path in ("/metrics", "/graphql/metrics", "/metrics/"):
        for headers in ({}, {"accept": "text/plain"}, {"accept": "application/openmetrics-text"}):
            response = httpx.get(f"{public}{path}", headers=headers, timeout=10)
            assert "beep_router_" not in response.text, (path, headers)
            assert "process_cpu_seconds_total" not in response.text, (path, headers)
    # ...while the internal port does serve them (the same process).
    text, _samples = scrape(targets(stack)["router"])
    assert "beep_router_graphql_requests_total" in text


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_the_internal_metrics_port_serves_only_get_metrics(stack: Stack, method: str) -> None:
    url = targets(stack)["router"]
    assert httpx.request(method, url, timeout=10).status_code == 404
    assert httpx.get(url.replace("/metrics", "/graphql"), timeout=10).status_code == 404
    client = GraphQLClient(url.replace("/metrics", "/graphql"))
    result = await client.execute("{ __typename }")  # the GraphQL API is not on this port either
    assert result.status == 404
