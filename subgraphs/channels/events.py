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
