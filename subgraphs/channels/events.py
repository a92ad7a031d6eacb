"""Events the channels context publishes (VoiceStatesChanged: a call's owner, after every change of its
participants, on `channel:{id}`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from subgraphs.kernel.events.catalogue import Event

if TYPE_CHECKING:
    from media.voice.room import ParticipantState


@dataclass(frozen=True)
class ChannelCreated(Event):
    channel_id: int
    server_id: int
    name: str
    kind: str
    parent_id: int | None


@dataclass(frozen=True)
class ChannelPermissionsChanged(Event):
    channel_id: int
    server_id: int


@dataclass(frozen=True)
class ChannelUpdated(Event):
    channel_id: int
    server_id: int
    name: str
    topic: str | None


@dataclass(frozen=True)
class ChannelMoved(Event):
    """A channel's folder or position changed (siblings renumbered by a move get one each too)."""

    channel_id: int
    server_id: int
    parent_id: int | None
    position: int
    permissions_synced: bool


@dataclass(frozen=True)
class ChannelDeleted(Event):
    """Its messages, overwrites and webhooks went with it; a folder's children get one each."""

    channel_id: int
    server_id: int
    parent_id: int | None


@dataclass(frozen=True)
class VoiceStatesChanged(Event):
    """Everyone in the call after the change (`[]`: the call ended), as JSON, so that every process's
    subscribers serve it without asking the owner."""

    channel_id: int
    states_json: str

    @classmethod
    def of(cls, channel_id: int, states: list[ParticipantState]) -> VoiceStatesChanged:
        return cls(channel_id, json.dumps([asdict(s) for s in states], separators=(",", ":")))

    def states(self) -> list[ParticipantState]:
        from media.voice.room import ParticipantState  # here, not above: decoding needs no aiortc

        return [ParticipantState(**item) for item in json.loads(self.states_json)]
