"""Events the servers context publishes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from subgraphs.kernel.events.catalogue import Event


@dataclass(frozen=True)
class ServerCreated(Event):
    server_id: int
    owner_id: int
    name: str


@dataclass(frozen=True)
class MemberJoined(Event):
    server_id: int
    user_id: int


@dataclass(frozen=True)
class RolesChanged(Event):
    """A role was created, edited or deleted, or a member's roles changed: permissions may differ now."""

    server_id: int
    role_id: int
    change: str  # CREATED | UPDATED | DELETED | ASSIGNED | UNASSIGNED
    user_id: int | None


@dataclass(frozen=True)
class MemberLeft(Event):
    server_id: int
    user_id: int


@dataclass(frozen=True)
class OwnershipTransferred(Event):
    server_id: int
    previous_owner_id: int
    owner_id: int


@dataclass(frozen=True)
class MemberKicked(Event):
    server_id: int
    user_id: int
    moderator_id: int
    reason: str | None


@dataclass(frozen=True)
class MemberBanned(Event):
    server_id: int
    user_id: int
    moderator_id: int
    reason: str | None


@dataclass(frozen=True)
class MemberUnbanned(Event):
    server_id: int
    user_id: int
    moderator_id: int


@dataclass(frozen=True)
class MemberTimedOut(Event):
    """`until` None: the timeout was cleared."""

    server_id: int
    user_id: int
    moderator_id: int
    until: datetime | None


@dataclass(frozen=True)
class ServerUpdated(Event):
    server_id: int
    name: str
    description: str
    visibility: str


@dataclass(frozen=True)
class ServerDeleted(Event):
    """The server and everything in it are gone; every live stream of it ends."""

    server_id: int


@dataclass(frozen=True)
class InvitationReceived(Event):
    """Published to the invitee (`user:{id}`)."""

    invitation_id: int
    server_id: int
    inviter_id: int
