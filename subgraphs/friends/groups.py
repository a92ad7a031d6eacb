"""Group conversations: 3 to 10 friends talk in a server of kind GROUP_DM with one text channel, so the
messages API serves it unchanged, as for a direct conversation (conversations.py writes the tenant).

The group's name and owner live in the directory (`group_conversations`); its participants are the
tenant's members (the shard's `members` rows, indexed in the directory's `memberships` with the time
each joined). Every change takes the tenant's lock (`access.lock_tenant`) before reading the
participants, so two additions cannot pass the cap of 10 together and a leave cannot race a removal;
additions take the pair locks of the adder with each newcomer first (as every change of a friendship
does), so a friendship cannot end between the check and the addition. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from subgraphs.friends import conversations, repository
from subgraphs.friends.events import GroupConversationChanged
from subgraphs.friends.models import GroupConversationRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import Conflict, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_user
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.ratelimit import Limit
from subgraphs.kernel.web.validation import clean_text

KIND = "GROUP_DM"
SERVER_NAME = "Group conversation"  # the server row's; the group's own name is GroupConversationRow.name
MAX_PARTICIPANTS = 10  # the creator included
MIN_OTHERS = 2  # fewer: a direct conversation
NAME_LENGTH = (2, 100)  # as server names
CREATE_GROUP = Limit("create_group_conversation", 20, 3600)


@dataclass(frozen=True)
class GroupView:
    row: GroupConversationRow
    participant_ids: list[int]  # the longest-standing first
    last_message_id: int | None = None
    unread_count: int = 0
    mention_count: int = 0


def clean_name(name: str | None) -> str | None:
    """None (or only spaces) for no name: clients show the participants' names."""
    if name is None or not name.strip():
        return None
    return clean_text(name, "name", min_len=NAME_LENGTH[0], max_len=NAME_LENGTH[1])


def _tell(uow: UnitOfWork, user_ids: list[int], event: GroupConversationChanged) -> None:
    for user_id in user_ids:
        uow.emit(topic_for_user(user_id), event)


def _change(row: GroupConversationRow, change: str, user_id: int, actor_id: int) -> GroupConversationChanged:
    return GroupConversationChanged(change, row.server_id, row.channel_id, user_id, actor_id, row.name)


async def _newcomers(uow: UnitOfWork, me: int, user_ids: list[int]) -> list[int]:
    """The people to add, checked in this order: someone at all, not yourself, no one twice, each an
    existing user."""
    if not user_ids:
        raise ValidationFailed("Name at least one friend.", code=ErrorCode.REQUIRED, field="userIds")
    if me in user_ids:
        raise ValidationFailed("You are in the conversation already.", field="userIds")
    if len(set(user_ids)) != len(user_ids):
        raise ValidationFailed("A user is named twice.", code=ErrorCode.DUPLICATE_ID, field="userIds")
    if len(user_ids) >= MAX_PARTICIPANTS:  # refuse absurd lists before looking anyone up
        raise _too_many()
    directory = uow.directory()
    for user_id in user_ids:
        if not await repository.user_exists(directory, user_id):
            raise NotFound("No such user.", field="userIds")
    return user_ids


async def _check_friends(uow: UnitOfWork, me: int, user_ids: list[int]) -> None:
    """Under the pairs' locks (taken in one global order, so two additions cannot deadlock): each is your
    friend. A block ends a friendship, so someone you blocked or who blocked you is refused the same way
    as a direct conversation with them (NOT_FRIENDS, revealing no block)."""
    directory = uow.directory()
    for user_id in sorted(user_ids, key=lambda u: repository.ordered(me, u)):
        await repository.lock_pair(directory, me, user_id)
    for user_id in user_ids:
        if await repository.friendship(directory, me, user_id) is None:
            raise PermissionDenied(
                "You can only add your friends.", code=ErrorCode.NOT_FRIENDS, field="userIds"
            )


def _too_many() -> ValidationFailed:
    return ValidationFailed(
        f"A group has at most {MAX_PARTICIPANTS} participants.",
        code=ErrorCode.LIMIT_REACHED,
        field="userIds",
    )


async def _group_of(
    uow: UnitOfWork, server_id: int, me: int, *, lock: bool = True
) -> tuple[GroupConversationRow, list[int]]:
    """The group and its participants, the tenant locked; "not found" unless the caller takes part."""
    directory = uow.directory()
    row = await repository.group(directory, server_id)
    if row is not None and lock:
        await access.lock_tenant(await uow.for_entity(server_id), server_id)
        row = await repository.group(directory, server_id)  # still there, under the lock?
    participants = await repository.participant_ids(directory, server_id) if row is not None else []
    if row is None or me not in participants:
        raise NotFound("No such conversation.", field="conversationId")
    return row, participants


async def create(
    uow: UnitOfWork, principal: Principal, user_ids: list[int], name: str | None, logical_shards: int
) -> GroupView:
    me = principal.user_id
    name = clean_name(name)
    others = await _newcomers(uow, me, user_ids)
    if len(others) < MIN_OTHERS:
        raise ValidationFailed(
            f"A group needs at least {MIN_OTHERS} friends besides you (openDirectMessage for one).",
            code=ErrorCode.TOO_SHORT,
            field="userIds",
        )
    await _check_friends(uow, me, others)
    participants = [me, *others]
    created = await conversations.create_tenant(uow, KIND, SERVER_NAME, me, participants, logical_shards)
    row = GroupConversationRow(
        server_id=created.server_id,
        channel_id=created.channel_id,
        name=name,
        owner_id=me,
        created_at=created.created_at,
    )
    directory = uow.directory()
    directory.add(row)
    await directory.flush()
    _tell(uow, participants, _change(row, "CREATED", me, me))
    return GroupView(row, participants)


async def add(uow: UnitOfWork, principal: Principal, server_id: int, user_ids: list[int]) -> GroupView:
    """Any participant adds friends of theirs, up to 10 participants in all."""
    me = principal.user_id
    await _group_of(uow, server_id, me, lock=False)  # a stranger learns nothing from the checks below
    newcomers = await _newcomers(uow, me, user_ids)
    # The pair locks before the tenant's (the order friendship changes take them: pair, then tenant).
    await _check_friends(uow, me, newcomers)
    row, participants = await _group_of(uow, server_id, me)
    if any(user_id in participants for user_id in newcomers):
        raise Conflict(
            "They are in the conversation already.", code=ErrorCode.ALREADY_MEMBER, field="userIds"
        )
    if len(participants) + len(newcomers) > MAX_PARTICIPANTS:
        raise _too_many()
    await conversations.add_members(uow, server_id, newcomers, datetime.now(UTC))
    everyone = [*participants, *newcomers]
    for user_id in newcomers:
        _tell(uow, everyone, _change(row, "ADDED", user_id, me))
    return GroupView(row, everyone)


async def remove(uow: UnitOfWork, principal: Principal, server_id: int, user_id: int) -> GroupView:
    """The owner removes a participant, who loses access at once."""
    me = principal.user_id
    row, participants = await _group_of(uow, server_id, me)
    if row.owner_id != me:
        raise PermissionDenied(
            "Only the group's owner can remove someone.", code=ErrorCode.NOT_OWNER, field="conversationId"
        )
    if user_id == me:
        raise ValidationFailed("To leave, use leaveGroupConversation.", field="userId")
    if user_id not in participants:
        raise NotFound("They are not in this conversation.", code=ErrorCode.NOT_PARTICIPANT, field="userId")
    await conversations.remove_member(uow, server_id, user_id)
    _tell(uow, participants, _change(row, "REMOVED", user_id, me))  # the removed one is told too
    return GroupView(row, [p for p in participants if p != user_id])


async def leave(uow: UnitOfWork, principal: Principal, server_id: int) -> list[int]:
    """Leave a group. The owner's role passes to the longest-standing participant; the last one out
    erases the conversation from every store. The attachment purge jobs to run after the commit."""
    me = principal.user_id
    row, participants = await _group_of(uow, server_id, me)
    remaining = [p for p in participants if p != me]
    left = _change(row, "REMOVED", me, me)
    if not remaining:
        directory = uow.directory()
        directory.expunge(row)  # its row cascades from the tenant's
        uow.emit(topic_for_user(me), left)
        return [await conversations.erase_tenant(uow, server_id, row.channel_id)]
    await conversations.remove_member(uow, server_id, me)
    _tell(uow, participants, left)
    if row.owner_id == me:
        row.owner_id = remaining[0]
        await uow.directory().flush()
        await conversations.set_owner(uow, server_id, row.owner_id)
        _tell(uow, remaining, _change(row, "OWNER_CHANGED", row.owner_id, me))
    return []


async def rename(uow: UnitOfWork, principal: Principal, server_id: int, name: str | None) -> GroupView:
    """Any participant names the group, or (None) clears its name."""
    me = principal.user_id
    clean = clean_name(name)
    row, participants = await _group_of(uow, server_id, me)
    row.name = clean
    await uow.directory().flush()
    _tell(uow, participants, _change(row, "RENAMED", me, me))
    return GroupView(row, participants)


async def group_of(uow: UnitOfWork, user_id: int, server_id: int) -> GroupView | None:
    """A group the user takes part in (None otherwise), with its activity."""
    found = await my_groups(uow, user_id, only=server_id)
    return found[0] if found else None


async def my_groups(uow: UnitOfWork, user_id: int, only: int | None = None) -> list[GroupView]:
    """The user's groups with their participants, newest message and unread counts (unsorted)."""
    directory = uow.directory()
    rows = await repository.groups_of(directory, user_id, only)
    participants = await repository.participants_of(directory, [row.server_id for row in rows])
    views = []
    for row in rows:
        activity = await conversations.activity(uow, user_id, row.server_id, row.channel_id)
        views.append(
            GroupView(
                row,
                participants.get(row.server_id, []),
                activity.last_message_id,
                activity.unread_count,
                activity.mention_count,
            )
        )
    return views
