"""Events the channels context publishes."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.events import Event


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
