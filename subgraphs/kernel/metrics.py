"""Prometheus metrics of a Beep process, served at `GET /metrics` in the text exposition format.

Every process has one registry (prometheus_client's default, with its `process_*` and `python_*`
collectors). uvicorn runs a single worker per process here (`beep serve` and `beep worker` never ask for
more), so there is no multiprocess mode to set up: several processes are several scrape targets.

Labels are bounded by the code or the configuration, never by data:
- `subgraph`: the six subgraph names; `operation_type`: query, mutation, subscription (or unknown when
  the document did not parse); `outcome`: ok, user_error (an expected error with a code: bad input,
  forbidden, rate limited...), server_error (a masked unexpected error).
- `limit`: the rate limits' names (kernel/web/ratelimit.py and the sign-in throttle).
- `database`: directory, or physical-N (the position of the database's URL in the shard map).
- `store`: directory or a logical shard's number (at most BEEP_LOGICAL_SHARDS values);
  `consumer`: the durable consumers this distribution ships.
The operation *name* is chosen by the client, so it is not a label: a script could mint a new series per
request. Per-operation detail belongs to traces (kernel/tracing.py), which carry it.

Cheap on the hot paths: label children are looked up once and kept (`child`), a counter increment is a
lock and an addition; the database pools and the outbox are read only when someone scrapes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from graphql import GraphQLError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

log = logging.getLogger("beep.metrics")
# No `*_created` series beside every counter and histogram: they double what is scraped and Prometheus
# does not need them (it sees resets on its own).
disable_created_metrics()

SUBGRAPH_STATE_KEY = "beep_subgraph"  # set on the request's scope by the subgraph app (kernel/web/app.py)
INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"

# Latency buckets of a chat API: most operations take milliseconds; 10 s is a timeout in all but name.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRAPHQL_REQUESTS = Counter(
    "beep_graphql_requests_total",
    "GraphQL operations a subgraph finished, by type and outcome (subscriptions count when they end).",
    ["subgraph", "operation_type", "outcome"],
)
GRAPHQL_DURATION = Histogram(
    "beep_graphql_request_duration_seconds",
    "Time a subgraph spent on a query or mutation, from parsing to the result.",
    ["subgraph", "operation_type"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "beep_websocket_connections", "Open graphql-transport-ws connections to a subgraph.", ["subgraph"]
)
SUBSCRIPTIONS = Gauge("beep_graphql_subscriptions", "Running GraphQL subscriptions.", ["subgraph"])
EVENTS_DELIVERED = Counter(
    "beep_bus_events_delivered_total",
    "Events handed to this process's subscribers' streams (one per event and local subscription).",
)
SUBSCRIBER_OVERFLOWS = Counter(
    "beep_bus_subscriber_overflows_total",
    "Subscriptions cut off because they fell too far behind their events (kernel/events/bus.py QUEUE_LIMIT).",
)
EVENTS_RELAYED = Counter("beep_outbox_events_relayed_total", "Outbox events the relay published on the bus.")
SENDS = Counter(
    "beep_message_sends_total",
    "Messages sent without files, by how they were written: `one_statement` (PostgreSQL), or `transaction` "
    "(SQLite, or the statement found access changed, the tenant moved, or a nonce taken meanwhile).",
    ["path"],
)
RATE_LIMIT_HITS = Counter(
    "beep_rate_limit_hits_total", "Requests refused because a rate limit was reached.", ["limit"]
)

M = TypeVar("M", Counter, Gauge, Histogram)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, kept: the hot paths pay one dict lookup, not label validation."""
    key = (id(metric), values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# GraphQL operations


def _outcome(errors: Iterable[GraphQLError] | None) -> str:
    codes = [(e.extensions or {}).get("code") for e in errors or ()]
    if not codes:
        return "ok"
    # Unexpected errors are masked to INTERNAL_SERVER_ERROR before this extension sees the result (it
    # comes before MaskUnexpectedErrors in schema_extensions(), so it leaves the operation after it);
    # every other error is the request's: a code such as FORBIDDEN, or none (a validation error).
    return "server_error" if INTERNAL_ERROR_CODE in codes else "user_error"


class OperationMetrics(SchemaExtension):
    """Counts every operation by subgraph, type and outcome, times queries and mutations, and keeps the
    number of running subscriptions."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        self._subscribed = False
        self._kind: str | None = None  # known once executing (on_execute); not when it did not parse
        raised: BaseException | None = None
        try:
            yield
        except BaseException as error:  # a document that does not parse leaves through here
            raised = error
            raise
        finally:
            context = self.execution_context
            subgraph = _subgraph_of(context.context)
            kind = self._kind or _operation_type(context)
            result = context.result
            outcome = _outcome(getattr(result, "errors", None) if result is not None else None)
            if isinstance(raised, GraphQLError):
                outcome = "user_error"
            elif isinstance(raised, Exception):
                outcome = "server_error"
            # (a cancelled subscription, GeneratorExit or CancelledError, ended as its client asked)
            child(GRAPHQL_REQUESTS, subgraph, kind, outcome).inc()
            if self._subscribed:
                child(SUBSCRIPTIONS, subgraph).dec()
            elif kind != "subscription":
                child(GRAPHQL_DURATION, subgraph, kind).observe(time.perf_counter() - started)

    def on_execute(self) -> Iterator[None]:
        # For a subscription this hook wraps only its start; on_operation lasts as long as it runs.
        self._kind = _operation_type(self.execution_context)
        if self._kind == "subscription":
            self._subscribed = True
            child(SUBSCRIPTIONS, _subgraph_of(self.execution_context.context)).inc()
        yield


def _operation_type(context: Any) -> str:
    try:
        kind = context.operation_type
    except Exception:  # the document did not parse, or names no operation
        return "unknown"
    return str(kind.value) if isinstance(kind, OperationType) else "unknown"


def _subgraph_of(graphql_context: Any) -> str:
    scope = getattr(getattr(graphql_context, "request", None), "scope", None) or {}
    name = (scope.get("state") or {}).get(SUBGRAPH_STATE_KEY)
    return name if isinstance(name, str) else "unknown"


class CountWebSockets:
    """Pure ASGI around a subgraph's WebSocket endpoint: the open connections, per subgraph."""

    def __init__(self, app: ASGIApp, subgraph: str) -> None:
        self.app = app
        self.gauge = child(WEBSOCKET_CONNECTIONS, subgraph)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


# ---------------------------------------------------------------------------------------------
# database pools: read from SQLAlchemy's pools when scraped (nothing on the request path)


class PoolCollector(Collector):
    """`beep_db_pool_*` of every Database this process has opened (weakly held: closed runtimes go)."""

    def __init__(self) -> None:
        self.databases: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "beep_db_pool_connections_in_use", "Connections checked out of the pool.", labels=["database"]
        )
        idle = GaugeMetricFamily(
            "beep_db_pool_connections_idle", "Open connections waiting in the pool.", labels=["database"]
        )
        size = GaugeMetricFamily(
            "beep_db_pool_size", "Connections the pool keeps open (its pool_size).", labels=["database"]
        )
        limit = GaugeMetricFamily(
            "beep_db_pool_max_connections",
            "Most connections the pool opens (pool_size + max_overflow); a checkout past it waits.",
            labels=["database"],
        )
        for database in list(self.databases):
            for name, pool in database_pools(database):
                checked_out = _call(pool, "checkedout")
                if checked_out is None:  # a pool without counts (NullPool, StaticPool)
                    continue
                in_use.add_metric([name], checked_out)
                idle.add_metric([name], _call(pool, "checkedin") or 0)
                pool_size = _call(pool, "size") or 0
                size.add_metric([name], pool_size)
                overflow = getattr(pool, "_max_overflow", 0)
                limit.add_metric([name], pool_size + overflow if overflow >= 0 else float("inf"))
        yield from (in_use, idle, size, limit)


def _call(pool: Any, method: str) -> int | None:
    function = getattr(pool, method, None)
    if function is None:
        return None
    try:
        return int(function())
    except Exception:
        return None


def database_pools(database: Any) -> list[tuple[str, Any]]:
    """(label, pool) of each engine a db.engines.Database has opened: the directory, physical-N. (How
    long checkouts wait is db/engines.py's `beep_db_pool_wait_seconds`.)"""
    return [(database.pool_name(url), e.sync_engine.pool) for url, e in database.engines().items()]


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def watch_database(database: Any) -> None:
    """Report this Database's pools in `beep_db_pool_*` for as long as it lives."""
    POOLS.databases.add(database)


# ---------------------------------------------------------------------------------------------
# the endpoint

Refresher = Callable[[], Awaitable[None]]
_refreshers: list[Refresher] = []
REFRESH_TIMEOUT_SECONDS = 5.0


def add_refresher(refresher: Refresher) -> Callable[[], None]:
    """Runs `refresher` before each scrape (e.g. the worker's outbox gauges); returns the remover."""
    _refreshers.append(refresher)
    return lambda: _refreshers.remove(refresher) if refresher in _refreshers else None


async def _metrics(_request: Request) -> Response:
    for refresher in list(_refreshers):
        try:
            await asyncio.wait_for(refresher(), REFRESH_TIMEOUT_SECONDS)
        except Exception:  # the rest of the metrics are still worth serving
            log.warning("a metrics refresh failed", exc_info=True)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    """`GET /metrics`: a route of its own beside /healthz, outside the GraphQL app and its checks."""
    return Route("/metrics", _metrics, methods=["GET"])
