"""The background worker: the outbox relay, the durable consumers of events, the presence sweep and the
notifications' retention.

Full mode runs it as its own process (`beep worker`, a Deployment of its own in Helm); the embedded mode
runs it inside the one process (`beep serve all` / `beep dev`). Several workers may run: each store is led
by one of them at a time (a lease), the others take over when it stops renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from media.previews.fetcher import FetchPolicy, SafeFetcher
from media.previews.service import PreviewService
from subgraphs.kernel import heap, metrics, pauses
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.outbox_metrics import OutboxGauges
from subgraphs.kernel.events.relay import Consumer, OutboxRelay, RelayConfig, relay_owner
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web import presence
from subgraphs.kernel.web.runtime import Runtime
from subgraphs.messages.link_previews import LinkPreviewer
from subgraphs.messages.search.backends import backend_for
from subgraphs.messages.search.indexer import SearchIndexer

log = logging.getLogger("beep.worker")


def consumers(runtime: Runtime) -> list[Consumer]:
    """The durable consumers this distribution ships (each keeps its own progress per store)."""
    from subgraphs.users.notifications import consumer as notifications

    found: list[Consumer] = [notifications.consumer(runtime)]
    indexer = SearchIndexer(runtime.database, runtime.bus, backend_for(runtime.settings))
    found.append(Consumer(indexer.name, indexer.handle))
    if runtime.settings.link_previews:
        previewer = LinkPreviewer(runtime.database, runtime.bus, preview_service(runtime.settings))
        found.append(Consumer(previewer.name, previewer.handle))
    return found


def preview_service(settings: Settings) -> PreviewService:
    networks = tuple(
        ipaddress.ip_network(n.strip()) for n in settings.preview_allowed_networks.split(",") if n.strip()
    )
    endpoints = dict(
        pair.split("=", 1) for pair in settings.preview_oembed_endpoints.split(";") if "=" in pair
    )
    return PreviewService(SafeFetcher(FetchPolicy(allowed_networks=networks)), oembed_overrides=endpoints)


def build_relay(runtime: Runtime, owner: str | None = None) -> OutboxRelay:
    settings = runtime.settings
    stores = [outbox.DIRECTORY_STORE, *range(settings.logical_shards)]
    # In one process (no Redis) a commit's hint cannot be lost, only the process with it (and a start
    # sweeps everything): sweeping 65 SQLite files every 5 s would be most of an idle instance's CPU.
    sweep = settings.outbox_sweep_seconds if settings.redis_url else max(settings.outbox_sweep_seconds, 60.0)
    config = RelayConfig(
        sweep_seconds=sweep,
        retention_seconds=settings.outbox_retention_seconds,
        relay_linger_seconds=settings.outbox_relay_linger_seconds,
        consumer_linger_seconds=settings.outbox_consumer_linger_seconds,
    )
    return OutboxRelay(
        runtime.database, runtime.bus, stores=stores, config=config, consumers=consumers(runtime)
    )


def sweep_presence(runtime: Runtime) -> Coroutine[None, None, None]:
    """Announces offline the users whose process died (kernel/web/presence.py), three times per expiry."""

    async def announce_offline(user_id: int) -> None:
        async with runtime.database.directory_session() as session:
            await presence.announce(session, runtime.bus, user_id, False)

    every = runtime.settings.presence_ttl_seconds / 3
    return presence.sweep_departures(runtime.presence, announce_offline, every)


def prune_notifications(runtime: Runtime) -> Coroutine[None, None, None]:
    """Keeps notifications within their retention (subgraphs/users/notifications/retention.py)."""
    from subgraphs.users.notifications import retention

    settings = runtime.settings
    kept = retention.Retention(settings.notification_keep_days, settings.notification_keep_per_user)
    every = settings.notification_prune_seconds
    return retention.prune_forever(runtime.database, runtime.leases, kept, every, lambda: datetime.now(UTC))


@contextlib.asynccontextmanager
async def running_worker(runtime: Runtime, port: int | None = None) -> AsyncIterator[asyncio.Task[None]]:
    """Runs the relay in the background for the duration of the block (restarting it if it fails), and
    beside it the presence sweep and the notifications' retention. The outbox's backlog and lag are
    read into /metrics when it is scraped (kernel/events/outbox_metrics.py)."""
    gauges = OutboxGauges(runtime.database, [], [])
    remove_refresher = metrics.add_refresher(gauges.refresh)

    async def supervise() -> None:
        while True:
            try:
                relay = build_relay(runtime, relay_owner(port))
                gauges.stores, gauges.consumers = relay.stores, [c.name for c in relay.consumers]
                await relay.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the outbox relay stopped; restarting it in 1 s")
                await asyncio.sleep(1)

    task = asyncio.create_task(supervise(), name="beep-worker")
    beside = [
        asyncio.create_task(sweep_presence(runtime), name="beep-presence-sweep"),
        asyncio.create_task(prune_notifications(runtime), name="beep-notification-retention"),
    ]
    try:
        yield task
    finally:
        remove_refresher()
        for running in (*beside, task):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


def create_worker_app(settings: Settings, port: int) -> Starlette:
    """`beep worker`: the relay, with /healthz for the orchestrator (503 once the relay has died) and
    /metrics for Prometheus, on the same port."""
    state: dict[str, asyncio.Task[None]] = {}

    async def healthz(_request: Request) -> Response:
        task = state.get("task")
        alive = task is not None and not task.done()
        return JSONResponse({"status": "ok" if alive else "stopped"}, status_code=200 if alive else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime.create(settings)
        metrics.watch_database(runtime.database)
        try:
            async with running_worker(runtime, port) as task:
                state["task"] = task
                heap.settle()  # the start-up's heap out of the collector's way (kernel/heap.py)
                watching = pauses.start()  # collections and event-loop stalls (kernel/pauses.py)
                try:
                    yield
                finally:
                    watching.cancel()
        finally:
            await runtime.close()

    return Starlette(routes=[Route("/healthz", healthz), metrics.metrics_route()], lifespan=lifespan)
