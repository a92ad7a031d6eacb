"""Voice calls' rules: who may join, speak, stream and moderate (read from the channel's permissions),
and the call owner (media/voice) doing the media. Refusals of the media server become domain errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aioice.ice import get_host_addresses
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from media.voice.announce import Announcement
from media.voice.errors import Refusal, VoiceRefused
from media.voice.hub import VoiceHub
from media.voice.ice import IceServer, client_ice_servers, parse_urls
from media.voice.node import INTERNAL_PATH, VoiceDirectory, internal_endpoint
from media.voice.room import Answer, ParticipantState, VoiceConfig
from subgraphs.channels import voice_guard
from subgraphs.channels.events import VoiceStatesChanged
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from subgraphs.kernel.events.catalogue import topic_for_channel
from subgraphs.kernel.leases import LeaseBusy
from subgraphs.kernel.settings import Settings, UnusableSettings
from subgraphs.kernel.tenancy.access_checks import access_channel, allowed_channel, or_none
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.runtime import Runtime, RuntimeHolder

log = logging.getLogger("beep.voice")

# Longer than a join can take (the owner's 10 s negotiation limit, within the internal API's 20 s
# timeout), so the lease never lapses under a join still running.
JOIN_LEASE_SECONDS = 25.0


def announcement(settings: Settings) -> Announcement:
    return Announcement.of(settings.voice_announced_address, parse_urls(settings.voice_host_addresses))


def check_voice_settings(settings: Settings) -> None:
    """At start: BEEP_VOICE_HOST_ADDRESSES must name at least one address of this machine (those it
    lacks are logged), and an announced address with several local addresses of its family and none
    chosen is logged as ambiguous."""
    announce = announcement(settings)
    if not announce.changes_anything:
        return
    present = get_host_addresses(True, True)
    try:
        missing = announce.missing(present)
    except ValueError as error:  # none of them is there
        raise UnusableSettings(str(error)) from None
    if missing:
        log.warning(
            "BEEP_VOICE_HOST_ADDRESSES: %s not on this machine (it has %s); announcing the others",
            ", ".join(map(str, missing)),
            ", ".join(present),
        )
    ambiguous = announce.ambiguous(present)
    if ambiguous:
        log.warning(
            "BEEP_VOICE_ANNOUNCED_ADDRESS %s replaces the host candidates of %s, only one of which its NAT "
            "forwards to: name it in BEEP_VOICE_HOST_ADDRESSES",
            announce.address,
            ", ".join(ambiguous),
        )


def hub_for(runtime: Runtime) -> VoiceHub:
    """The calls this process owns (the runtime's one hub, created on first use)."""
    return runtime.part(VoiceHub, _build_hub)


def _build_hub(runtime: Runtime) -> VoiceHub:
    settings = runtime.settings
    servers = parse_urls(settings.voice_ice_servers)
    config = VoiceConfig(
        ice_servers=tuple(IceServer((url,)).for_aiortc() for url in servers),
        room_limit=settings.voice_room_limit,
        disconnect_timeout=settings.voice_disconnect_seconds,
        announce=announcement(settings),
    )

    async def announce(channel_id: int, states: list[ParticipantState]) -> None:
        await runtime.bus.publish(topic_for_channel(channel_id), VoiceStatesChanged.of(channel_id, states))

    return VoiceHub(config, announce)


def directory_for(runtime: Runtime) -> VoiceDirectory:
    """Which process owns each call (all of them this one's unless BEEP_VOICE_NODES lists several)."""

    def build(runtime: Runtime) -> VoiceDirectory:
        s = runtime.settings
        return VoiceDirectory(
            hub_for(runtime), parse_urls(s.voice_nodes), s.voice_node_url, s.voice_internal_secret
        )

    return runtime.part(VoiceDirectory, build)


def internal_routes(holder: RuntimeHolder) -> list[BaseRoute]:
    """The endpoint through which other replicas reach the calls this process owns."""

    async def endpoint(request: Request) -> Response:
        runtime = holder.runtime
        handler = internal_endpoint(lambda: hub_for(runtime), runtime.settings.voice_internal_secret)
        response: Response = await handler(request)
        return response

    return [Route(f"{INTERNAL_PATH}/{{method}}", endpoint, methods=["POST"])]


@dataclass(frozen=True)
class Session:
    channel_id: int
    answer: Answer | None
    ice_servers: list[IceServer]
    participants: list[ParticipantState]


@dataclass(frozen=True)
class OfferInput:
    sdp: str | None
    camera_mid: str | None
    screen_mid: str | None


def _ice_for(runtime: Runtime, user_id: int) -> list[IceServer]:
    s = runtime.settings
    return client_ice_servers(
        parse_urls(s.voice_stun_urls),
        parse_urls(s.voice_turn_urls),
        s.voice_turn_secret,
        user_id,
        s.voice_turn_ttl_seconds,
    )


VOICE = ("VOICE",)
NOT_VOICE = "Calls happen in voice channels."


def _domain(refused: VoiceRefused) -> DomainError:
    match refused.reason:
        case Refusal.INVALID_SDP:
            return ValidationFailed(refused.message, code=ErrorCode.INVALID_SDP, field=refused.field)
        case Refusal.NO_AUDIO:
            return ValidationFailed(refused.message, code=ErrorCode.NO_AUDIO, field=refused.field)
        case Refusal.STREAM_FORBIDDEN:
            return PermissionDenied(refused.message, field=refused.field)
        case Refusal.ALREADY_IN_CALL:
            return Conflict(refused.message, code=ErrorCode.ALREADY_IN_CALL, field=refused.field)
        case Refusal.NOT_IN_CALL:
            return NotFound(refused.message, code=ErrorCode.NOT_IN_CALL, field=refused.field)
        case Refusal.ROOM_FULL:
            return ValidationFailed(refused.message, code=ErrorCode.LIMIT_REACHED, field="channelId")
        case _:
            return ValidationFailed(refused.message, code=ErrorCode.MEDIA_UNAVAILABLE, field=refused.field)


async def join(
    runtime: Runtime,
    uow: UnitOfWork,
    principal: Principal,
    channel_id: int,
    offer: OfferInput,
    self_mute: bool,
    self_deaf: bool = False,
) -> Session:
    found = await access_channel(
        uow,
        principal.user_id,
        channel_id,
        needs=Permission.CONNECT,
        refusal="You may not join this call.",
        kinds=VOICE,
        wrong_kind=NOT_VOICE,
    )
    directory = directory_for(runtime)
    owner = directory.owner(channel_id)
    try:
        # "Not in another call, then join" spans the nodes owning calls: one join per user at a time, or
        # two joins racing through two replicas to calls on two owners would both pass the check.
        async with runtime.leases.hold(
            f"voice-join:{principal.user_id}", ttl=JOIN_LEASE_SECONDS, wait=JOIN_LEASE_SECONDS
        ):
            current = await directory.call_of(principal.user_id)
            if current is not None and current[0] != channel_id:
                raise VoiceRefused(
                    Refusal.ALREADY_IN_CALL, "You are in a call already: leave it first.", "channelId"
                )
            answer = await owner.join(
                channel_id,
                principal.user_id,
                offer.sdp or "",
                camera_mid=offer.camera_mid,
                screen_mid=offer.screen_mid,
                can_speak=found.has(Permission.SPEAK),
                can_stream=found.has(Permission.STREAM),
                self_mute=self_mute,
                self_deaf=self_deaf,
            )
        participants = await owner.states(channel_id)
    except LeaseBusy:
        message = "Another join of yours is still being negotiated."
        raise Conflict(message, code=ErrorCode.ALREADY_IN_CALL, field="channelId") from None
    except VoiceRefused as refused:
        raise _domain(refused) from None
    voice_guard.ensure_guard(runtime, owner, channel_id, found.server.server_id)
    return Session(channel_id, answer, _ice_for(runtime, principal.user_id), participants)


async def update(
    runtime: Runtime,
    uow: UnitOfWork,
    principal: Principal,
    offer: OfferInput,
    self_mute: bool | None,
    self_deaf: bool | None = None,
) -> Session:
    try:
        current = await directory_for(runtime).call_of(principal.user_id)
        if current is None:
            raise NotFound("You are not in a call.", code=ErrorCode.NOT_IN_CALL)
        channel_id, owner = current
        found = await allowed_channel(uow, principal.user_id, channel_id, needs=Permission.CONNECT)
        if found is None:
            await owner.leave(principal.user_id)  # access lost since joining: out of the call
            raise NotFound("You are not in a call.", code=ErrorCode.NOT_IN_CALL)
        _channel, answer = await owner.update(
            principal.user_id,
            offer.sdp,
            camera_mid=offer.camera_mid,
            screen_mid=offer.screen_mid,
            can_speak=found.has(Permission.SPEAK),
            can_stream=found.has(Permission.STREAM),
            self_mute=self_mute,
            self_deaf=self_deaf,
        )
        participants = await owner.states(channel_id)
    except VoiceRefused as refused:
        raise _domain(refused) from None
    return Session(channel_id, answer, _ice_for(runtime, principal.user_id), participants)


async def leave(runtime: Runtime, principal: Principal) -> int:
    try:
        current = await directory_for(runtime).call_of(principal.user_id)
        if current is None:
            raise VoiceRefused(Refusal.NOT_IN_CALL, "You are not in a call.")
        return await current[1].leave(principal.user_id)
    except VoiceRefused as refused:
        raise _domain(refused) from None


async def moderate(
    runtime: Runtime,
    uow: UnitOfWork,
    principal: Principal,
    channel_id: int,
    user_id: int,
    *,
    mute: bool | None = None,
    disconnect: bool = False,
) -> list[ParticipantState]:
    found = await access_channel(uow, principal.user_id, channel_id, kinds=VOICE, wrong_kind=NOT_VOICE)
    needed = Permission.MOVE_MEMBERS if disconnect else Permission.MUTE_MEMBERS
    # Not `needs=`: the refusal names userId while "not found" names channelId, and a check has one field.
    if not found.has(needed):
        raise PermissionDenied(
            "You may not move members out of calls here." if disconnect else "You may not mute members here.",
            field="userId",
        )
    owner = directory_for(runtime).owner(channel_id)
    try:
        if disconnect:
            await owner.disconnect(channel_id, user_id)
        elif mute is not None:
            await owner.moderate(channel_id, user_id, server_mute=mute)
        return await owner.states(channel_id)
    except VoiceRefused as refused:
        raise _domain(refused) from None


async def states(
    runtime: Runtime, uow: UnitOfWork, user_id: int | None, channel_id: int
) -> list[ParticipantState] | None:
    if await or_none(access_channel(uow, user_id, channel_id)) is None:
        return None
    return await current_states(runtime, channel_id)


async def current_states(runtime: Runtime, channel_id: int) -> list[ParticipantState]:
    """The call's participants from its owner, for a caller who checked view access."""
    try:
        return await directory_for(runtime).owner(channel_id).states(channel_id)
    except VoiceRefused:
        return []  # the owner cannot be reached: no call to show (logged by the owner's absence)
