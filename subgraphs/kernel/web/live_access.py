"""Who may receive a shared live stream: the subgraphs' side of the router's fan-out tier.

The fan-out tier (router/fanout.ts) renders each event of a subscription once and writes it to every
socket whose user may see it. It never decides access itself: it asks the subgraph that owns the
subscription field, here, for many users at once (at subscribe time, on every access change of the
stream's servers, and periodically). A subgraph declares a check per field it shares
(`SubgraphDefinition.live_access`); a field without one is executed once per subscriber, as before.

Routes (kernel/web/app.py mounts them on every subgraph; each request is signed, kernel/web/internal.py):
  POST /internal/live-access      {"field", "arguments", "users": [id...]} -> a Verdict as JSON
  GET  /internal/access-changes   newline-delimited JSON: {"serverId", "channelId"} per AccessChanged
  POST /internal/presence         {"touch": [[user, connection]...], "drop": [...]}: the tier's sockets
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from db.failures import database_unavailable
from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.events.bus import EventBus
from subgraphs.kernel.events.catalogue import ACCESS_TOPIC, AccessChanged, Event
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.redis_client import redis_unavailable
from subgraphs.kernel.tenancy import access, tenant_tables
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web import internal, presence
from subgraphs.kernel.web.runtime import Runtime, RuntimeHolder

log = logging.getLogger("beep.live_access")
MAX_USERS_PER_CHECK = 5000
FEED_HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class Denial:
    code: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """Of the users asked about: who may receive the stream, why the others may not, and which servers'
    access changes can change the answer (the tier re-asks when one of them announces AccessChanged)."""

    allowed: frozenset[int]
    denied: Mapping[int, Denial] = field(default_factory=dict)
    servers: frozenset[int] = frozenset()

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": sorted(str(u) for u in self.allowed),
            "denied": {str(u): {"code": d.code, "message": d.message} for u, d in self.denied.items()},
            "servers": sorted(str(s) for s in self.servers),
        }


# (runtime, the field's arguments as the client sent them, users, renewal): `renewal` is True when the
# users already receive the stream (a re-check): a user who lost access is then told FORBIDDEN, while
# at subscribe time "no such thing" and "not yours" are one answer.
LiveAccessCheck = Callable[[Runtime, Mapping[str, Any], Sequence[int], bool], Awaitable[Verdict]]


@dataclass(frozen=True)
class StateStream:
    """A shared field whose every event is the whole current state, starting with a snapshot
    (voiceStateEvents): the tier gives a socket that joins a running stream its last event at once."""

    check: LiveAccessCheck


async def access_change_lines(
    bus: EventBus, heartbeat_seconds: float = FEED_HEARTBEAT_SECONDS
) -> AsyncGenerator[bytes, None]:
    """The `/internal/access-changes` feed: `{"ready":true}` once subscribed, then a line per AccessChanged
    and `{}` after each `heartbeat_seconds` without one, for as long as the tier listens.

    The wait for the next event is a task of its own that a heartbeat never cancels: cancelling the bus
    iterator's step would close it, and the feed would end at its first heartbeat (the tier reconnects
    and re-asks about every stream it holds: a burst of checks every 16 s, found in the mixed load)."""
    async with bus.subscribe(ACCESS_TOPIC) as stream:
        yield b'{"ready":true}\n'  # subscribed: nothing announced from now on is missed
        events = aiter(stream)
        next_event: asyncio.Future[Event] | None = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({next_event}, timeout=heartbeat_seconds)
                if not done:
                    yield b"{}\n"
                    continue
                finished, next_event = next_event, None
                try:
                    event = finished.result()  # the bus's end or its overflow ends the feed
                except StopAsyncIteration:
                    return
                if isinstance(event, AccessChanged):
                    channel = str(event.channel_id) if event.channel_id is not None else None
                    line = {"serverId": str(event.server_id), "channelId": channel}
                    yield json.dumps(line).encode() + b"\n"
        finally:
            if next_event is not None:
                next_event.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_event


def everyone_denied(user_ids: Sequence[int], code: TopLevelCode, message: str) -> Verdict:
    return Verdict(frozenset(), {u: Denial(code.value, message) for u in user_ids})


async def own_stream(
    _runtime: Runtime, _arguments: Mapping[str, Any], user_ids: Sequence[int], _renewal: bool
) -> Verdict:
    """A stream of the signed-in user's own (friends, notifications): each user may receive theirs. The
    field is `@viewerDependent`, so the tier renders it per user and shares it between their sockets."""
    return Verdict(frozenset(user_ids))


@asynccontextmanager
async def tenant_reading(runtime: Runtime, entity_id: int) -> AsyncIterator[AsyncSession]:
    """A short-lived session of the shard holding an entity's tenant (routed by its id, moves included)."""
    uow = UnitOfWork(runtime.database, runtime.bus)
    try:
        async with uow.reading(await uow.shard_for(entity_id)) as session:
            yield session
    finally:
        await uow.close()


def verdict_of(
    user_ids: Sequence[int], allowed: set[int], servers: set[int], *, renewal: bool, lost: str, missing: str
) -> Verdict:
    """`allowed` of `user_ids` may receive the stream; the others are told `missing` (NOT_FOUND) at
    subscribe time, `lost` (FORBIDDEN) on a re-check."""
    denial = (
        Denial(TopLevelCode.FORBIDDEN.value, lost)
        if renewal
        else Denial(TopLevelCode.NOT_FOUND.value, missing)
    )
    return Verdict(frozenset(allowed), {u: denial for u in user_ids if u not in allowed}, frozenset(servers))


def channel_members_holding(needed: Permission, *, lost: str) -> LiveAccessCheck:
    """A channel's stream (`channelId` argument): the members who hold `needed` in the channel. At
    subscribe time a missing channel and a forbidden one are the same NOT_FOUND; on a re-check, a
    member who lost it is told FORBIDDEN (`lost`), and everyone NOT_FOUND once the channel is gone."""

    async def check(
        runtime: Runtime, arguments: Mapping[str, Any], user_ids: Sequence[int], renewal: bool
    ) -> Verdict:
        channel = id_argument(str(arguments.get("channelId", "")), "channelId")
        async with tenant_reading(runtime, channel) as session:
            server_id = await session.scalar(
                sa.select(tenant_tables.channels.c.server_id).where(tenant_tables.channels.c.id == channel)
            )
            if server_id is None:
                gone = "This channel was deleted." if renewal else "No such channel."
                return everyone_denied(user_ids, TopLevelCode.NOT_FOUND, gone)
            holders = await access.channel_viewers(session, channel, user_ids, needed)
        return verdict_of(
            user_ids, holders, {server_id}, renewal=renewal, lost=lost, missing="No such channel."
        )

    return check


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _signed_body(request: Request, runtime: Runtime) -> bytes | None:
    body = await request.body()
    header = request.headers.get(internal.SIGNATURE_HEADER)
    if not internal.signature_valid(runtime.settings.resolved_internal_secret, header, body):
        return None
    return body


InternalHandler = Callable[[Runtime, bytes], Awaitable[Response]]


def _signed(holder: RuntimeHolder, handler: InternalHandler) -> Callable[[Request], Awaitable[Response]]:
    """Only a request signed with the deployment's internal secret reaches `handler`."""

    async def endpoint(request: Request) -> Response:
        runtime = holder.runtime
        body = await _signed_body(request, runtime)
        if body is None:
            return _refused(401, "This endpoint serves Beep's router only.")
        try:
            return await handler(runtime, body)
        except Exception as error:
            if not (database_unavailable(error) or redis_unavailable(error)):
                raise
            # A failover in progress: the router's fan-out tier asks again (its own retry), no traceback.
            log.warning("internal request: database or Redis unavailable", extra={"error": repr(error)})
            return _refused(503, "The database or Redis is unavailable for a moment: try again.")

    return endpoint


def routes(holder: RuntimeHolder, checks: Mapping[str, LiveAccessCheck | StateStream]) -> list[BaseRoute]:
    async def live_access(runtime: Runtime, body: bytes) -> Response:
        try:
            asked = json.loads(body)
            name = asked["field"]
            arguments = asked.get("arguments") or {}
            users = [int(u) for u in asked["users"]]
            renewal = bool(asked.get("renewal", False))
        except (ValueError, KeyError, TypeError):
            return _refused(400, "Expected {field, arguments, users}.")
        if not isinstance(name, str) or not isinstance(arguments, dict) or len(users) > MAX_USERS_PER_CHECK:
            return _refused(400, "Expected {field, arguments, users}.")
        declared = checks.get(name)
        if declared is None:
            return JSONResponse({"shared": False})
        state = isinstance(declared, StateStream)
        check = declared.check if isinstance(declared, StateStream) else declared
        try:
            verdict = await check(runtime, arguments, users, renewal)
        except BeepGraphQLError as error:
            code = (error.extensions or {}).get("code", TopLevelCode.BAD_USER_INPUT.value)
            verdict = everyone_denied(users, TopLevelCode(code), error.message)
        return JSONResponse({"shared": True, "state": state, **verdict.as_json()})

    async def access_changes(runtime: Runtime, _body: bytes) -> Response:
        return StreamingResponse(access_change_lines(runtime.bus), media_type="application/x-ndjson")

    async def presence_of_sockets(runtime: Runtime, body: bytes) -> Response:
        try:
            asked = json.loads(body)
            touch = [(int(u), str(c)) for u, c in asked.get("touch", [])]
            drop = [(int(u), str(c)) for u, c in asked.get("drop", [])]
        except (ValueError, TypeError):
            return _refused(400, "Expected {touch, drop}: lists of [user, connection].")
        await presence.sockets_changed(runtime, touch, drop)
        return JSONResponse({"ttlSeconds": runtime.settings.presence_ttl_seconds})

    return [
        Route("/internal/live-access", _signed(holder, live_access), methods=["POST"]),
        Route("/internal/access-changes", _signed(holder, access_changes), methods=["GET"]),
        Route("/internal/presence", _signed(holder, presence_of_sockets), methods=["POST"]),
    ]
