"""Events of the friends context. Each is emitted on `user:{id}` of both people concerned (one of them
for blocks), so every device of either sees it live (`friendEvents`) and durable consumers (the
notifications consumer: FriendRequestSent becomes the recipient's FRIEND_REQUEST notification,
FriendRequestRemoved deletes it, FriendshipStarted becomes the requester's FRIEND_ACCEPTED) read the same
log."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.events.catalogue import Event


@dataclass(frozen=True)
class FriendRequestSent(Event):
    request_id: int
    sender_id: int
    recipient_id: int


@dataclass(frozen=True)
class FriendRequestRemoved(Event):
    """A pending request ended without a friendship: DECLINED by the recipient, CANCELLED by the sender.
    A block removes it as the blocker's decline or cancel, so the blocked user learns nothing more."""

    request_id: int
    sender_id: int
    recipient_id: int
    reason: str  # DECLINED | CANCELLED


@dataclass(frozen=True)
class FriendshipStarted(Event):
    """A request was accepted (or two met): `requester_id` asked first, `accepter_id` accepted.
    `request_id` is the accepted request (None in events written before it was recorded): the
    notifications consumer keys the requester's FRIEND_ACCEPTED notification on it."""

    requester_id: int
    accepter_id: int
    request_id: int | None = None


@dataclass(frozen=True)
class FriendshipEnded(Event):
    """`by_id` removed (or blocked) `other_id`; their direct conversation is erased with it."""

    by_id: int
    other_id: int


@dataclass(frozen=True)
class UserBlocked(Event):
    """On the blocker's topic only: the blocked user is not told."""

    blocker_id: int
    blocked_id: int


@dataclass(frozen=True)
class UserUnblocked(Event):
    blocker_id: int
    blocked_id: int


@dataclass(frozen=True)
class DirectConversationOpened(Event):
    server_id: int
    channel_id: int
    user_low_id: int
    user_high_id: int


@dataclass(frozen=True)
class GroupConversationChanged(Event):
    """A group conversation changed, told on `user:{id}` of every participant (and of one who was removed
    or left). `change`: CREATED (`user_id` is the creator), ADDED / REMOVED (`user_id` is the participant
    added, removed or who left — REMOVED on your own topic means you lost access), RENAMED (`name` is the
    new name, None for none), OWNER_CHANGED (`user_id` is the new owner). `actor_id` did it."""

    change: str
    server_id: int
    channel_id: int
    user_id: int
    actor_id: int
    name: str | None = None
