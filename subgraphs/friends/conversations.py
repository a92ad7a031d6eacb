"""Conversations' tenants. A pair of friends talks in a server of kind DM, a group (groups.py) in one of
kind GROUP_DM, each with one text channel, so the servers, channels and messages code serves them
unchanged (sending, replies, reactions, pins, files, live events, read state). A DM is created on first
use and erased with the friendship; a group is erased when its last participant leaves.

Cross-context writes, as webhooks/bots.py does for bot members, in one place for both kinds
(`create_tenant`, `add_members`, `remove_member`, `erase_tenant`): the server, member, @everyone role and
channel rows are written through the kernel's shared light table references (kernel/tenancy/tenant_tables.py,
the ones kernel/tenancy/access.py reads) in the tenant's shard, the tenant and its membership index through
db/tenants.py; erasing deletes the server row (every tenant row cascades from it, messages and their
attachment rows too), the tenant row (cascading to the membership index and the conversation's row),
records an attachment purge job (kernel/tenancy/attachment_files.py) and announces the servers and channels
contexts' ChannelDeleted and ServerDeleted, on which live streams end and the search consumer drops the
conversation's documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from db.ids import new_id, shard_of
from db.locator import Relocation
from db.tenants import Tenant, choose_shard, index_membership, register_tenant, unindex_membership
from subgraphs.channels.events import ChannelDeleted
from subgraphs.friends import repository
from subgraphs.friends.events import DirectConversationOpened
from subgraphs.friends.models import DirectConversationRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server, topic_for_user
from subgraphs.kernel.tenancy import access, attachment_files
from subgraphs.kernel.tenancy import tenant_tables as tables
from subgraphs.kernel.tenancy.permissions import DEFAULT_MEMBER_PERMISSIONS, Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.api import read_states_in
from subgraphs.servers.events import ServerDeleted

DM_NAME = "Direct messages"  # never listed; a server name is required (2-100 characters)
CHANNEL_NAME = "direct"
# What each of the two may do in their conversation: what a plain member may, and pin (as in Discord's
# DMs), but not invite anyone.
DM_PERMISSIONS = (DEFAULT_MEMBER_PERMISSIONS | Permission.PIN_MESSAGES) & ~Permission.CREATE_INVITE


@dataclass(frozen=True)
class CreatedTenant:
    server_id: int
    channel_id: int
    created_at: datetime


async def create_tenant(
    uow: UnitOfWork, kind: str, name: str, owner_id: int, member_ids: list[int], logical_shards: int
) -> CreatedTenant:
    """A conversation's tenant (kind DM or GROUP_DM): the server row, its @everyone role with the
    conversation's permissions, the members (in this order: the first joined first), one text channel,
    the tenant row and the membership index."""
    directory = uow.directory()
    now = datetime.now(UTC)
    server_id = new_id(choose_shard(logical_shards))
    channel_id = new_id(shard_of(server_id))  # a tenant's rows share its shard
    session = await uow.for_entity(server_id)
    await session.execute(
        sa.insert(tables.servers).values(
            id=server_id,
            name=name,
            description="",
            visibility="PRIVATE",
            kind=kind,
            owner_id=owner_id,
            created_at=now,
        )
    )
    await session.execute(
        sa.insert(tables.roles).values(
            id=server_id,
            server_id=server_id,
            name="@everyone",
            permissions=int(DM_PERMISSIONS),
            position=0,
            created_at=now,
        )
    )
    await session.execute(
        sa.insert(tables.channels).values(
            id=channel_id,
            server_id=server_id,
            name=CHANNEL_NAME,
            kind="TEXT",
            position=0,
            permissions_synced=True,
            created_at=now,
        )
    )
    await register_tenant(directory, server_id, kind)
    await directory.flush()  # the membership index and the conversation reference the tenant
    await add_members(uow, server_id, member_ids, now)
    return CreatedTenant(server_id, channel_id, now)


async def add_members(uow: UnitOfWork, server_id: int, user_ids: list[int], now: datetime) -> None:
    """Members of a conversation's tenant: the shard's rows and the directory's index. Joined in the order
    given (a microsecond apart), so "longest-standing" has one answer."""
    if not user_ids:
        return
    session = await uow.for_entity(server_id)
    joined = [(user_id, now + timedelta(microseconds=i)) for i, user_id in enumerate(user_ids)]
    await session.execute(
        sa.insert(tables.members),
        [{"server_id": server_id, "user_id": u, "joined_at": at} for u, at in joined],
    )
    directory = uow.directory()
    for user_id, at in joined:
        index_membership(directory, user_id, server_id, at)
    await directory.flush()


async def remove_member(uow: UnitOfWork, server_id: int, user_id: int) -> None:
    """A member of a conversation's tenant goes: the shard's row (their read state there too) and the
    directory's index; live streams of the tenant re-check access at once."""
    session = await uow.for_entity(server_id)
    await session.execute(
        sa.delete(tables.members).where(
            tables.members.c.server_id == server_id, tables.members.c.user_id == user_id
        )
    )
    await session.execute(
        sa.delete(tables.read_states).where(
            tables.read_states.c.server_id == server_id, tables.read_states.c.user_id == user_id
        )
    )
    await unindex_membership(uow.directory(), user_id, server_id)
    access_changed(uow.emit, server_id)


async def set_owner(uow: UnitOfWork, server_id: int, owner_id: int) -> None:
    """Keep the server row's owner (`Server.owner`) the group's; it grants nothing
    (kernel/tenancy/access.py)."""
    session = await uow.for_entity(server_id)
    await session.execute(
        sa.update(tables.servers).where(tables.servers.c.id == server_id).values(owner_id=owner_id)
    )


async def erase_tenant(uow: UnitOfWork, server_id: int, channel_id: int) -> int:
    """Erase a conversation's tenant from every store (its directory rows cascade from the tenant row);
    the attachment purge job to run after the commit."""
    directory = uow.directory()
    session = await uow.for_entity(server_id)
    await access.lock_tenant(session, server_id)  # fences the old copy of a moved tenant
    await session.execute(sa.delete(tables.servers).where(tables.servers.c.id == server_id))
    await directory.execute(sa.delete(Relocation).where(Relocation.tenant_id == server_id))
    await directory.execute(sa.delete(Tenant).where(Tenant.id == server_id))
    job = await attachment_files.purge_server_later(uow, server_id)
    uow.emit(topic_for_server(server_id), ChannelDeleted(channel_id, server_id, None))
    uow.emit(topic_for_server(server_id), ServerDeleted(server_id))
    access_changed(uow.emit, server_id)  # every live stream of it re-checks, finds nothing and ends
    return job


async def open_conversation(
    uow: UnitOfWork, principal: Principal, friend_id: int, logical_shards: int
) -> DirectConversationRow:
    """The conversation with a friend, created on first use. Idempotent, and race-safe under the pair's
    lock: two first opens at once create one."""
    me = principal.user_id
    if friend_id == me:
        raise ValidationFailed("A conversation needs someone else.", field="userId")
    directory = uow.directory()
    await repository.lock_pair(directory, me, friend_id)
    if await repository.friendship(directory, me, friend_id) is None:
        # Blocking ends a friendship, so this also refuses blocked pairs.
        raise PermissionDenied(
            "You can only message your friends.", code=ErrorCode.NOT_FRIENDS, field="userId"
        )
    existing = await repository.conversation(directory, me, friend_id)
    if existing is not None:
        return existing
    low, high = repository.ordered(me, friend_id)
    created = await create_tenant(uow, "DM", DM_NAME, me, [low, high], logical_shards)
    server_id, channel_id, now = created.server_id, created.channel_id, created.created_at
    row = DirectConversationRow(
        user_low_id=low, user_high_id=high, server_id=server_id, channel_id=channel_id, created_at=now
    )
    directory.add(row)
    await directory.flush()
    event = DirectConversationOpened(server_id, channel_id, low, high)
    uow.emit(topic_for_user(low), event)
    uow.emit(topic_for_user(high), event)
    return row


async def erase(uow: UnitOfWork, a: int, b: int) -> list[int]:
    """Erase the pair's conversation from every store (the pair is locked); the purge jobs to run after
    the commit (the attachment files)."""
    directory = uow.directory()
    row = await repository.conversation(directory, a, b)
    if row is None:
        return []
    server_id, channel_id = row.server_id, row.channel_id
    directory.expunge(row)
    await directory.execute(
        sa.delete(DirectConversationRow).where(DirectConversationRow.server_id == server_id)
    )
    job = await erase_tenant(uow, server_id, channel_id)
    return [job]


@dataclass(frozen=True)
class ConversationView:
    row: DirectConversationRow
    other_id: int
    last_message_id: int | None
    unread_count: int
    mention_count: int


@dataclass(frozen=True)
class Activity:
    last_message_id: int | None
    unread_count: int
    mention_count: int


async def activity(uow: UnitOfWork, user_id: int, server_id: int, channel_id: int) -> Activity:
    """A conversation's newest message and the user's unread and mention counts (as `readStates`, capped
    at 1,000)."""
    # A short-lived session: listing someone's conversations goes through many shards, and holding one
    # connection per shard until the end of the request would exhaust the pool (20 groups did).
    async with uow.reading(await uow.shard_for(server_id)) as session:
        last = await session.scalar(
            sa.select(sa.func.max(tables.messages.c.id)).where(tables.messages.c.channel_id == channel_id)
        )
        states = await read_states_in(session, user_id, server_id) or []
    state = next((s for s in states if s.channel_id == channel_id), None)
    return Activity(last, state.unread_count if state else 0, state.mention_count if state else 0)


async def my_conversations(uow: UnitOfWork, user_id: int) -> list[ConversationView]:
    """The user's direct conversations, the one with the newest message first (then the newest opened),
    with their unread counts."""
    views = []
    for row in await repository.conversations_of(uow.directory(), user_id):
        other = row.user_high_id if row.user_low_id == user_id else row.user_low_id
        found = await activity(uow, user_id, row.server_id, row.channel_id)
        views.append(
            ConversationView(row, other, found.last_message_id, found.unread_count, found.mention_count)
        )
    views.sort(key=lambda v: v.last_message_id or v.row.server_id, reverse=True)  # ids are time-ordered
    return views


async def conversation_with(uow: UnitOfWork, user_id: int, other_id: int) -> DirectConversationRow | None:
    return await repository.conversation(uow.directory(), user_id, other_id)
