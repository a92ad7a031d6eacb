"""Events the servers context publishes."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.events import Event


@dataclass(frozen=True)
class ServerCreated(Event):
    server_id: int
    owner_id: int
    name: str


@dataclass(frozen=True)
class MemberJoined(Event):
    server_id: int
    user_id: int
