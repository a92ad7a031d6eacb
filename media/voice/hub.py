"""The calls of one process. A call is owned by exactly one process (its room lives there); `owner_of`
says which when several host calls, and node.py is how the other replicas reach it."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence

from media.voice import metrics
from media.voice.errors import Refusal, VoiceRefused
from media.voice.room import Answer, ParticipantState, Room, VoiceConfig
from media.voice.sdp import read_offer

# Called after every change of a call, with its channel and current participants (empty: the call ended).
Announce = Callable[[int, list[ParticipantState]], Awaitable[None]]


def owner_of(channel_id: int, nodes: Sequence[str]) -> str:
    """Rendezvous hashing: the node that owns a channel's call, the same from every replica, and only the
    calls of a removed node move."""
    if not nodes:
        raise ValueError("no media nodes")
    return max(nodes, key=lambda node: hashlib.sha256(f"{node}/{channel_id}".encode()).digest())


class VoiceHub:
    def __init__(self, config: VoiceConfig, announce: Announce) -> None:
        self.config = config
        self._announce = announce
        self._rooms: dict[int, Room] = {}
        self._calls: dict[int, int] = {}  # user id -> channel id
        metrics.watch(self)

    def channel_of(self, user_id: int) -> int | None:
        return self._calls.get(user_id)

    def states(self, channel_id: int) -> list[ParticipantState]:
        room = self._rooms.get(channel_id)
        return room.states() if room else []

    def room(self, channel_id: int) -> Room | None:
        return self._rooms.get(channel_id)

    def participant_count(self) -> int:
        return len(self._calls)

    @metrics.counted_join
    async def join(
        self,
        channel_id: int,
        user_id: int,
        offer: str,
        *,
        camera_mid: str | None,
        screen_mid: str | None,
        can_speak: bool,
        can_stream: bool,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> Answer:
        plan = read_offer(offer, camera_mid, screen_mid)
        if plan.publishes_video and not can_stream:
            raise VoiceRefused(
                Refusal.STREAM_FORBIDDEN,
                "You may not share video in this channel.",
                "cameraMid" if camera_mid else "screenMid",
            )
        current = self._calls.get(user_id)
        existing = self._rooms.get(channel_id)
        if current == channel_id and existing is not None and user_id in existing.participants:
            # The same call again (a reloaded page whose old connection has not timed out): the new
            # connection replaces the old one.
            await existing.leave(user_id)
            current = self._calls.get(user_id)
        if current is not None:
            raise VoiceRefused(
                Refusal.ALREADY_IN_CALL, "You are in a call already: leave it first.", "channelId"
            )
        room = self._rooms.get(channel_id)
        if room is None:
            room = self._rooms[channel_id] = Room(channel_id, self.config, self._changed, self._left)
        self._calls[user_id] = channel_id  # claimed before the first await: a second join is refused
        try:
            answer = await room.join(user_id, offer, plan, can_speak)
        except BaseException:
            if self._calls.get(user_id) == channel_id and user_id not in room.participants:
                del self._calls[user_id]
            if not room.participants and self._rooms.get(channel_id) is room:
                del self._rooms[channel_id]
            raise
        if self_mute or self_deaf:
            await room.update(
                user_id, None, None, can_speak=can_speak, self_mute=self_mute, self_deaf=self_deaf
            )
        return answer

    async def update(
        self,
        user_id: int,
        offer: str | None,
        *,
        camera_mid: str | None,
        screen_mid: str | None,
        can_speak: bool,
        can_stream: bool,
        self_mute: bool | None,
        self_deaf: bool | None = None,
    ) -> tuple[int, Answer | None]:
        channel_id, room = self._room_of(user_id)
        plan = None
        if offer is not None:
            plan = read_offer(offer, camera_mid, screen_mid)
            if plan.publishes_video and not can_stream:
                raise VoiceRefused(
                    Refusal.STREAM_FORBIDDEN,
                    "You may not share video in this channel.",
                    "cameraMid" if camera_mid else "screenMid",
                )
        answer = await room.update(
            user_id, offer, plan, can_speak=can_speak, self_mute=self_mute, self_deaf=self_deaf
        )
        return channel_id, answer

    async def leave(self, user_id: int) -> int:
        channel_id, room = self._room_of(user_id)
        await room.leave(user_id)
        return channel_id

    async def moderate(self, channel_id: int, user_id: int, *, server_mute: bool) -> None:
        room = self._rooms.get(channel_id)
        if room is None or user_id not in room.participants:
            raise VoiceRefused(Refusal.NOT_IN_CALL, "That member is not in this call.", "userId")
        await room.moderate(user_id, server_mute=server_mute)

    async def disconnect(self, channel_id: int, user_id: int) -> None:
        room = self._rooms.get(channel_id)
        if room is None or not await room.leave(user_id):
            raise VoiceRefused(Refusal.NOT_IN_CALL, "That member is not in this call.", "userId")

    async def restrict(self, channel_id: int, user_id: int, *, can_speak: bool, can_stream: bool) -> bool:
        room = self._rooms.get(channel_id)
        return room is not None and await room.restrict(user_id, can_speak=can_speak, can_stream=can_stream)

    def channels(self) -> list[int]:
        return list(self._rooms)

    async def close(self) -> None:
        for room in list(self._rooms.values()):
            await room.close()

    def _room_of(self, user_id: int) -> tuple[int, Room]:
        channel_id = self._calls.get(user_id)
        room = self._rooms.get(channel_id) if channel_id is not None else None
        if channel_id is None or room is None or user_id not in room.participants:
            raise VoiceRefused(Refusal.NOT_IN_CALL, "You are not in a call.")
        return channel_id, room

    async def _changed(self, room: Room) -> None:
        await self._announce(room.channel_id, room.states())

    def _left(self, room: Room, user_id: int) -> None:
        if self._calls.get(user_id) == room.channel_id:
            del self._calls[user_id]
        if not room.participants and self._rooms.get(room.channel_id) is room:
            del self._rooms[room.channel_id]
