"""Rules of the friends context: requests, friendships, blocks. Never commits.

Every change of a pair's relationship runs under the pair's lock (repository.lock_pair), taken before
the rows it depends on are read, so two requests sent both ways at once meet (the second one accepts the
first), and accept/cancel/remove/block cannot interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.friends import conversations, repository
from subgraphs.friends.events import (
    FriendRequestRemoved,
    FriendRequestSent,
    FriendshipEnded,
    FriendshipStarted,
    UserBlocked,
    UserUnblocked,
)
from subgraphs.friends.models import BlockRow, FriendRequestRow, FriendshipRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import Conflict, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import Event, topic_for_user
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.ratelimit import Limit

MAX_FRIENDS = 1000
MAX_OUTGOING_REQUESTS = 100
SEND_FRIEND_REQUEST = Limit("send_friend_request", 30, 3600)


@dataclass(frozen=True)
class Befriended:
    """A request that met one the other way: they are friends now."""

    friend_id: int


def _tell_both(uow: UnitOfWork, a: int, b: int, event: Event) -> None:
    uow.emit(topic_for_user(a), event)
    uow.emit(topic_for_user(b), event)


async def _check_room(uow: UnitOfWork, me: int, other: int, field: str) -> None:
    directory = uow.directory()
    if await repository.friend_count(directory, me) >= MAX_FRIENDS:
        raise ValidationFailed(
            f"You have {MAX_FRIENDS} friends, the most there can be.",
            code=ErrorCode.LIMIT_REACHED,
            field=field,
        )
    if await repository.friend_count(directory, other) >= MAX_FRIENDS:
        raise ValidationFailed(
            f"They have {MAX_FRIENDS} friends, the most there can be.",
            code=ErrorCode.LIMIT_REACHED,
            field=field,
        )


async def _befriend(uow: UnitOfWork, request: FriendRequestRow) -> None:
    directory = uow.directory()
    await directory.delete(request)
    low, high = repository.ordered(request.sender_id, request.recipient_id)
    directory.add(FriendshipRow(user_low_id=low, user_high_id=high, created_at=datetime.now(UTC)))
    await directory.flush()
    _tell_both(
        uow,
        request.sender_id,
        request.recipient_id,
        FriendshipStarted(request.sender_id, request.recipient_id, request_id=request.id),
    )


async def send_request(uow: UnitOfWork, principal: Principal, username: str) -> FriendRequestRow | Befriended:
    me = principal.user_id
    directory = uow.directory()
    found = await repository.user_by_username(directory, username)
    if found is None:
        raise NotFound("No user has that username.", field="username")
    other, is_bot = found
    if other == me:
        raise ValidationFailed("You cannot be your own friend.", field="username")
    if is_bot:
        raise ValidationFailed("Bots cannot be friends.", field="username")
    await repository.lock_pair(directory, me, other)
    if await repository.block_between(directory, me, other) is not None:
        raise PermissionDenied(
            "You blocked this user: unblock them first.", code=ErrorCode.BLOCKED, field="username"
        )
    if await repository.block_between(directory, other, me) is not None:
        # Whoever is blocked is not told so: the answer of an unknown username.
        raise NotFound("No user has that username.", field="username")
    if await repository.friendship(directory, me, other) is not None:
        raise Conflict("You are already friends.", code=ErrorCode.ALREADY_FRIENDS, field="username")
    pending = await repository.request_between(directory, me, other)
    if pending is not None:
        if pending.sender_id == me:
            raise Conflict("You already asked them.", field="username")
        await _check_room(uow, me, other, "username")
        await _befriend(uow, pending)  # they asked too: that is a yes on both sides
        return Befriended(other)
    if await repository.outgoing_count(directory, me) >= MAX_OUTGOING_REQUESTS:
        raise ValidationFailed(
            f"At most {MAX_OUTGOING_REQUESTS} requests can wait for an answer: cancel some first.",
            code=ErrorCode.LIMIT_REACHED,
            field="username",
        )
    await _check_room(uow, me, other, "username")
    low, high = repository.ordered(me, other)
    request = FriendRequestRow(
        id=new_id(DIRECTORY_SHARD),
        sender_id=me,
        recipient_id=other,
        user_low_id=low,
        user_high_id=high,
        created_at=datetime.now(UTC),
    )
    directory.add(request)
    await directory.flush()
    _tell_both(uow, me, other, FriendRequestSent(request.id, me, other))
    return request


async def _my_request(
    uow: UnitOfWork, request_id: int, *, recipient: int | None = None, sender: int | None = None
) -> FriendRequestRow:
    """The request, locked, if the caller is its recipient (or sender); "not found" otherwise."""
    directory = uow.directory()
    request = await repository.request_by_id(directory, request_id)
    if request is not None:
        await repository.lock_pair(directory, request.sender_id, request.recipient_id)
        request = await repository.request_by_id(directory, request_id)  # still there, under the lock?
    if (
        request is None
        or (recipient is not None and request.recipient_id != recipient)
        or (sender is not None and request.sender_id != sender)
    ):
        raise NotFound("No such friend request.", field="id")
    return request


async def accept_request(uow: UnitOfWork, principal: Principal, request_id: int) -> int:
    """Accept an incoming request; the new friend's id."""
    request = await _my_request(uow, request_id, recipient=principal.user_id)
    await _check_room(uow, principal.user_id, request.sender_id, "id")
    await _befriend(uow, request)
    return request.sender_id


async def decline_request(uow: UnitOfWork, principal: Principal, request_id: int) -> None:
    request = await _my_request(uow, request_id, recipient=principal.user_id)
    await _drop_request(uow, request, "DECLINED")


async def cancel_request(uow: UnitOfWork, principal: Principal, request_id: int) -> None:
    request = await _my_request(uow, request_id, sender=principal.user_id)
    await _drop_request(uow, request, "CANCELLED")


async def _drop_request(uow: UnitOfWork, request: FriendRequestRow, reason: str) -> None:
    await uow.directory().delete(request)
    event = FriendRequestRemoved(request.id, request.sender_id, request.recipient_id, reason)
    _tell_both(uow, request.sender_id, request.recipient_id, event)


async def _end_friendship(uow: UnitOfWork, me: int, other: int) -> list[int]:
    """End the friendship (the pair is locked) and erase their conversation; purge job ids to run."""
    directory = uow.directory()
    row = await repository.friendship(directory, me, other)
    if row is None:
        return []
    await directory.delete(row)
    jobs = await conversations.erase(uow, me, other)
    _tell_both(uow, me, other, FriendshipEnded(me, other))
    return jobs


async def remove_friend(uow: UnitOfWork, principal: Principal, friend_id: int) -> list[int]:
    """End a friendship; their direct conversation is erased for both. The attachment purge jobs to run
    after the commit."""
    directory = uow.directory()
    await repository.lock_pair(directory, principal.user_id, friend_id)
    if await repository.friendship(directory, principal.user_id, friend_id) is None:
        raise NotFound("You are not friends with this user.", code=ErrorCode.NOT_FRIENDS, field="userId")
    return await _end_friendship(uow, principal.user_id, friend_id)


async def block(uow: UnitOfWork, principal: Principal, user_id: int) -> list[int]:
    """Block a user: a pending request between the two goes, so does a friendship (and with it their
    conversation). Idempotent. The attachment purge jobs to run after the commit."""
    me = principal.user_id
    if user_id == me:
        raise ValidationFailed("You cannot block yourself.", field="userId")
    directory = uow.directory()
    if not await repository.user_exists(directory, user_id):
        raise NotFound("No such user.", field="userId")
    await repository.lock_pair(directory, me, user_id)
    if await repository.block_between(directory, me, user_id) is not None:
        return []
    pending = await repository.request_between(directory, me, user_id)
    if pending is not None:  # told as the blocker's cancel or decline: the blocked user learns nothing more
        await _drop_request(uow, pending, "CANCELLED" if pending.sender_id == me else "DECLINED")
    jobs = await _end_friendship(uow, me, user_id)
    directory.add(BlockRow(blocker_id=me, blocked_id=user_id, created_at=datetime.now(UTC)))
    await directory.flush()
    uow.emit(topic_for_user(me), UserBlocked(me, user_id))
    return jobs


async def unblock(uow: UnitOfWork, principal: Principal, user_id: int) -> None:
    directory = uow.directory()
    await repository.lock_pair(directory, principal.user_id, user_id)
    row = await repository.block_between(directory, principal.user_id, user_id)
    if row is None:
        raise NotFound("You have not blocked this user.", field="userId")
    await directory.delete(row)
    uow.emit(topic_for_user(principal.user_id), UserUnblocked(principal.user_id, user_id))
