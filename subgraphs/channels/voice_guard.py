"""Keeps a call's participants within their permissions while it lasts. On every access change of the
call's server or channel (roles, overwrites, membership, bans, deletions announce `AccessChanged`) and
every 30 s as a safety net, each participant's access is read again: whoever can no longer view the
channel or CONNECT is moved out of the call, and losing SPEAK or STREAM applies at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from media.voice.errors import VoiceRefused
from media.voice.node import Owner
from subgraphs.channels.events import VoiceStatesChanged
from subgraphs.kernel.events.catalogue import Event, PresenceChanged, topic_for_channel, topic_for_server
from subgraphs.kernel.tenancy.access_checks import allowed_channel
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.runtime import Runtime

log = logging.getLogger("beep.voice")

RECHECK_SECONDS = 30.0


class Guards:
    """The running guard of each call this runtime owns, by channel (kept on the runtime: Runtime.part)."""

    def __init__(self) -> None:
        self.by_channel: dict[int, asyncio.Task[None]] = {}


def _guards(runtime: Runtime) -> dict[int, asyncio.Task[None]]:
    return runtime.part(Guards, lambda _: Guards()).by_channel


def ensure_guard(runtime: Runtime, owner: Owner, channel_id: int, server_id: int) -> None:
    guards = _guards(runtime)
    task = guards.get(channel_id)
    if task is None or task.done():
        guards[channel_id] = asyncio.ensure_future(_guard(runtime, owner, channel_id, server_id))


async def recheck(runtime: Runtime, owner: Owner, channel_id: int) -> None:
    for state in await owner.states(channel_id):
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            found = await allowed_channel(uow, state.user_id, channel_id, needs=Permission.CONNECT)
        finally:
            await uow.close()
        try:
            if found is None:
                log.info("moved out of a call: access lost", extra={"user_id": state.user_id})
                await owner.disconnect(channel_id, state.user_id)
            else:
                await owner.restrict(
                    channel_id,
                    state.user_id,
                    can_speak=found.has(Permission.SPEAK),
                    can_stream=found.has(Permission.STREAM),
                )
        except VoiceRefused:
            pass  # left meanwhile


async def _guard(runtime: Runtime, owner: Owner, channel_id: int, server_id: int) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def pump() -> None:
        async with runtime.bus.subscribe(
            topic_for_server(server_id), topic_for_channel(channel_id)
        ) as events:
            async for event in events:
                queue.put_nowait(event)

    pumping = asyncio.ensure_future(pump())
    try:
        while await owner.states(channel_id):
            try:
                event = await asyncio.wait_for(queue.get(), RECHECK_SECONDS)
            except TimeoutError:
                event = None
            if isinstance(event, PresenceChanged):
                continue  # not about access
            if isinstance(event, VoiceStatesChanged):
                if not event.states_json or event.states_json == "[]":
                    break  # the call ended
                continue
            await recheck(runtime, owner, channel_id)
    except Exception:
        log.exception("the voice access guard failed", extra={"channel_id": channel_id})
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping
        _guards(runtime).pop(channel_id, None)
