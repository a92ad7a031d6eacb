"""Voice calls in the API: join with an offer and get the answer, renegotiate, mute, leave; who is in a
call, live; moderators mute members or move them out. The client always offers (no glare)."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry

from media.voice.ice import IceServer
from media.voice.room import ParticipantState
from media.voice.sdp import MAX_MEDIA_LINES
from subgraphs.channels import live, voice_service
from subgraphs.channels.types import MAX_ROOM, ChannelsInfo
from subgraphs.channels.voice_types import VoiceState
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    ConflictError,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    error_types,
)
from subgraphs.kernel.federation import at_most
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.web import live_signal, ratelimit, streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, signed_in_mutation

MAX_ICE = 10  # ICE servers offered, and URLs of each (a few STUN and TURN ones: configured, assumed)


@strawberry.type(
    description="A call's participants (empty: no call). Renegotiate when the set of "
    "participants, cameras or screens changed: the answer fills your receive slots."
)
class VoiceChannelState:
    channel_id: strawberry.ID
    participants: list[VoiceState] = strawberry.field(directives=[at_most(MAX_ROOM)])


@strawberry.enum
class VoiceSource(enum.Enum):
    MICROPHONE = "MICROPHONE"
    CAMERA = "CAMERA"
    SCREEN = "SCREEN"


@strawberry.type(description="What one of your receive slots (an m-line you offered to receive) carries.")
class VoiceStream:
    mid: str
    user_id: strawberry.ID
    source: VoiceSource


@strawberry.type(description="An ICE server for your RTCPeerConnection (TURN with time-limited credentials).")
class VoiceIceServer:
    urls: list[str] = strawberry.field(directives=[at_most(MAX_ICE)])
    username: str | None
    credential: str | None

    @classmethod
    def of(cls, server: IceServer) -> VoiceIceServer:
        return cls(urls=list(server.urls), username=server.username, credential=server.credential)


@strawberry.type(description="Your side of a call after an offer: the answer, and what each slot carries.")
class VoiceSession:
    channel_id: strawberry.ID
    answer: str | None = strawberry.field(description="The SDP answer (null when no offer was sent).")
    streams: list[VoiceStream] = strawberry.field(directives=[at_most(MAX_MEDIA_LINES)])
    audio_slots_needed: int = strawberry.field(description="Receive-only audio m-lines to offer to hear all.")
    video_slots_needed: int = strawberry.field(description="Receive-only video m-lines to offer to see all.")
    ice_servers: list[VoiceIceServer] = strawberry.field(directives=[at_most(MAX_ICE)])
    participants: list[VoiceState] = strawberry.field(directives=[at_most(MAX_ROOM)])

    @classmethod
    def of(cls, session: voice_service.Session) -> VoiceSession:
        answer = session.answer
        return cls(
            channel_id=strawberry.ID(str(session.channel_id)),
            answer=answer.sdp if answer else None,
            streams=[
                VoiceStream(mid=s.mid, user_id=strawberry.ID(str(s.user_id)), source=VoiceSource(s.source))
                for s in (answer.streams if answer else ())
            ],
            audio_slots_needed=answer.audio_slots_needed if answer else 0,
            video_slots_needed=answer.video_slots_needed if answer else 0,
            ice_servers=[VoiceIceServer.of(s) for s in session.ice_servers],
            participants=[VoiceState.of(p) for p in session.participants],
        )


@strawberry.type(description="You left the call.")
class VoiceLeft:
    channel_id: strawberry.ID


@strawberry.input(
    description="An SDP offer: one sending audio m-line (your microphone), optionally the "
    "video m-lines of your camera and screen (needs Stream), and receive-only slots."
)
class VoiceOfferInput:
    sdp: str
    camera_mid: str | None = None
    screen_mid: str | None = None


@strawberry.input
class JoinVoiceInput:
    channel_id: strawberry.ID
    offer: VoiceOfferInput
    self_mute: bool = False
    self_deaf: bool = False


@strawberry.input
class UpdateVoiceInput:
    offer: VoiceOfferInput | None = None
    self_mute: bool | None = None
    self_deaf: bool | None = None


@strawberry.input
class MuteVoiceMemberInput:
    channel_id: strawberry.ID
    user_id: strawberry.ID
    muted: bool


VoiceSessionResult = Annotated[
    VoiceSession | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("VoiceSessionResult"),
]
LeaveVoiceResult = Annotated[VoiceLeft | NotFoundError, strawberry.union("LeaveVoiceResult")]
VoiceModerationResult = Annotated[
    VoiceChannelState | ValidationError | NotFoundError | ForbiddenError,
    strawberry.union("VoiceModerationResult"),
]


def _offer(offer: VoiceOfferInput | None) -> voice_service.OfferInput:
    if offer is None:
        return voice_service.OfferInput(None, None, None)
    return voice_service.OfferInput(offer.sdp, offer.camera_mid, offer.screen_mid)


def _channel_state(channel_id: int, states: list[ParticipantState]) -> VoiceChannelState:
    return VoiceChannelState(
        channel_id=strawberry.ID(str(channel_id)), participants=[VoiceState.of(s) for s in states]
    )


@strawberry.type
class VoiceQuery:
    @strawberry.field(
        description="Who is in a voice channel's call (null if you cannot view the channel).",
        directives=[at_most(MAX_ROOM)],
    )
    async def voice_states(self, info: ChannelsInfo, channel_id: strawberry.ID) -> list[VoiceState] | None:
        ctx = info.context
        target = id_argument(str(channel_id), "channelId")
        found = await voice_service.states(ctx.runtime, ctx.uow, ctx.user_id, target)
        return None if found is None else [VoiceState.of(s) for s in found]


@strawberry.type
class VoiceMutation:
    @error_codes(
        ErrorCode.ALREADY_IN_CALL,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_SDP,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.MEDIA_UNAVAILABLE,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_IN_CALL,
        ErrorCode.NO_AUDIO,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Join a voice channel's call (Connect) with an SDP offer; returns the answer. One call "
        "at a time: leave the first. Audio is forwarded with Speak, video needs Stream.",
    )
    async def join_voice(self, info: ChannelsInfo, input: JoinVoiceInput) -> VoiceSessionResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> VoiceSession:
            channel_id = id_input(str(input.channel_id), "channelId")
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.VOICE_NEGOTIATION, principal.user_id)
            session = await voice_service.join(
                ctx.runtime,
                ctx.uow,
                principal,
                channel_id,
                _offer(input.offer),
                input.self_mute,
                input.self_deaf,
            )
            return VoiceSession.of(session)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(
        ErrorCode.ALREADY_IN_CALL,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_SDP,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.MEDIA_UNAVAILABLE,
        ErrorCode.NOT_IN_CALL,
        ErrorCode.NO_AUDIO,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Renegotiate (a new offer: more receive slots, camera or screen on or off) and/or mute, "
        "unmute, deafen or undeafen yourself.",
    )
    async def update_voice(self, info: ChannelsInfo, input: UpdateVoiceInput) -> VoiceSessionResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> VoiceSession:
            if input.offer is not None:  # muting alone negotiates nothing
                await ratelimit.enforce(
                    ctx.runtime.rate_limiter, ratelimit.VOICE_NEGOTIATION, principal.user_id
                )
            session = await voice_service.update(
                ctx.runtime, ctx.uow, principal, _offer(input.offer), input.self_mute, input.self_deaf
            )
            return VoiceSession.of(session)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(
        ErrorCode.ALREADY_IN_CALL,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_SDP,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.MEDIA_UNAVAILABLE,
        ErrorCode.NOT_IN_CALL,
        ErrorCode.NO_AUDIO,
    )
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Leave your call.")
    async def leave_voice(self, info: ChannelsInfo) -> LeaveVoiceResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> VoiceLeft:
            return VoiceLeft(channel_id=strawberry.ID(str(await voice_service.leave(ctx.runtime, principal))))

        return await signed_in_mutation(info, operation, error_types(NotFoundError))

    @error_codes(
        ErrorCode.ALREADY_IN_CALL,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_SDP,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.MEDIA_UNAVAILABLE,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_IN_CALL,
        ErrorCode.NO_AUDIO,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Mute or unmute a member in a call (Mute Members)."
    )
    async def mute_voice_member(
        self, info: ChannelsInfo, input: MuteVoiceMemberInput
    ) -> VoiceModerationResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> VoiceChannelState:
            channel_id = id_input(str(input.channel_id), "channelId")
            user_id = id_input(str(input.user_id), "userId")
            states = await voice_service.moderate(
                ctx.runtime, ctx.uow, principal, channel_id, user_id, mute=input.muted
            )
            return _channel_state(channel_id, states)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.ALREADY_IN_CALL,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_SDP,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.MEDIA_UNAVAILABLE,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_IN_CALL,
        ErrorCode.NO_AUDIO,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Move a member out of a call (Move Members)."
    )
    async def disconnect_voice_member(
        self, info: ChannelsInfo, channel_id: strawberry.ID, user_id: strawberry.ID
    ) -> VoiceModerationResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> VoiceChannelState:
            channel = id_input(str(channel_id), "channelId")
            member = id_input(str(user_id), "userId")
            states = await voice_service.moderate(
                ctx.runtime, ctx.uow, principal, channel, member, disconnect=True
            )
            return _channel_state(channel, states)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )


@strawberry.type
class VoiceSubscription:
    @strawberry.subscription(
        description="A voice channel's participants now, then after every change (join, leave, mute, camera, "
        "screen, a dropped connection). Ends with FORBIDDEN if you can no longer view the channel."
    )
    @own_operation
    async def voice_state_events(
        self, info: ChannelsInfo, channel_id: strawberry.ID
    ) -> AsyncGenerator[VoiceChannelState, None]:
        ctx = info.context
        ctx.require_principal()
        target = id_argument(str(channel_id), "channelId")
        stream = await live.voice_stream(ctx, target)
        following = streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal)
        async for states in following:
            yield live_signal.passing(states, lambda s: _channel_state(target, s))
