"""The send path's kept channel permissions (kernel/tenancy/access_versions.py) are never stale: every change
of who may send, made through the services in a transaction of its own (as another process would make it),
is refused on the very next send, with the permissions of the send before it kept in this process.

Against a throwaway SQLite database, through the services (the integration tests prove the same through
the API on PostgreSQL). Each case first proves that the send before the change was answered from the
kept permissions, so a case cannot pass by never using them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from db.engines import Database
from subgraphs.channels import overwrites
from subgraphs.channels import repository as channels_repository
from subgraphs.channels import service as channels
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import NotFound, PermissionDenied
from subgraphs.kernel.tenancy import access_versions
from subgraphs.kernel.tenancy.permissions import DEFAULT_MEMBER_PERMISSIONS, Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service as messages
from subgraphs.servers import administration, membership, moderation, roles
from subgraphs.servers import service as servers
from tests.harness.sqlite_db import in_transaction, migrated_database

OWNER = Principal(user_id=3001, username="owner", token_id=None, expires_at=0)
MEMBER = Principal(user_id=3002, username="member", token_id=None, expires_at=0)
T = TypeVar("T")
NO_SEND = DEFAULT_MEMBER_PERMISSIONS & ~Permission.SEND_MESSAGES


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    access_versions.CACHE.clear()
    async with migrated_database(tmp_path) as db:
        yield db
    access_versions.CACHE.clear()


run = in_transaction  # one transaction of its own, as one request (of any process) would run it


@dataclass(frozen=True)
class Guild:
    db: Database
    server_id: int
    channel_id: int  # the server's #general

    async def send(self, principal: Principal = MEMBER) -> messages.SentMessage:
        return await run(
            self.db,
            lambda uow: messages.send_message(
                uow, principal, messages.NewMessage(self.channel_id, "hi", None, None)
            ),
        )

    async def send_kept(self, principal: Principal = MEMBER) -> None:
        """A send answered from the kept permissions (so the next change is checked against them)."""
        await self.send(principal)
        hits = access_versions.CACHE.hits
        await self.send(principal)
        assert access_versions.CACHE.hits == hits + 1, "the second send did not use the kept permissions"

    async def change(self, operation: Callable[[UnitOfWork], Awaitable[Any]]) -> None:
        await run(self.db, operation)


async def guild(db: Database) -> Guild:
    async def create(uow: UnitOfWork) -> int:
        return (await servers.create_server(uow, OWNER, servers.NewServer("Guild", "PRIVATE", None), 1)).id

    server_id = await run(db, create)
    await run(db, lambda uow: membership.admit(uow, server_id, MEMBER.user_id, datetime.now(UTC), "id"))

    async def general(uow: UnitOfWork) -> int:
        rows = await channels_repository.channels_of_servers(await uow.for_entity(server_id), [server_id])
        return next(r.id for r in rows if r.kind == "TEXT")

    return Guild(db, server_id, await run(db, general))


async def make_role(g: Guild, permissions: Permission, holder: int | None = MEMBER.user_id) -> int:
    role = await run(g.db, lambda uow: roles.create_role(uow, OWNER, g.server_id, "senders", permissions))
    if holder is not None:
        await g.change(lambda uow: roles.set_member_role(uow, OWNER, role.id, holder, assigned=True))
    return role.id


async def everyone_holds(g: Guild, permissions: Permission) -> None:
    changes = roles.RoleChanges(permissions=permissions)
    await g.change(lambda uow: roles.update_role(uow, OWNER, g.server_id, changes))  # @everyone's id


async def everyone_may_not_send(g: Guild) -> None:
    await everyone_holds(g, NO_SEND)


async def test_a_kept_send_reads_no_roles_or_overwrites(database: Database) -> None:
    g = await guild(database)
    await g.send()
    statements: list[str] = []
    remove = database.add_query_hook(lambda statement, _url: statements.append(statement.lower()))
    try:
        sent = await g.send()
    finally:
        remove()
    assert sent.channel_name == "general"
    tables = ("roles", "channel_overwrites", "members")
    permission_reads = [s for s in statements if any(t in s for t in tables)]
    assert not permission_reads, statements
    assert len([s for s in statements if "access_versions" in s]) == 1


async def test_everyone_losing_send_messages_is_refused_at_once(database: Database) -> None:
    g = await guild(database)
    await g.send_kept()
    await everyone_may_not_send(g)
    with pytest.raises(PermissionDenied):
        await g.send()


async def test_everyone_gaining_send_messages_is_allowed_at_once(database: Database) -> None:
    g = await guild(database)
    await everyone_may_not_send(g)
    for _ in range(2):  # kept: a member without Send Messages
        with pytest.raises(PermissionDenied):
            await g.send()
    await everyone_holds(g, DEFAULT_MEMBER_PERMISSIONS)
    await g.send()


@pytest.mark.parametrize("how", ["unassigned", "deleted", "emptied"])
async def test_losing_the_role_that_lets_one_send_is_refused_at_once(database: Database, how: str) -> None:
    g = await guild(database)
    await everyone_may_not_send(g)
    role_id = await make_role(g, Permission.SEND_MESSAGES)
    await g.send_kept()
    if how == "unassigned":
        await g.change(lambda uow: roles.set_member_role(uow, OWNER, role_id, MEMBER.user_id, assigned=False))
    elif how == "deleted":
        await g.change(lambda uow: roles.delete_role(uow, OWNER, role_id))
    else:
        await g.change(
            lambda uow: roles.update_role(uow, OWNER, role_id, roles.RoleChanges(permissions=Permission(0)))
        )
    with pytest.raises(PermissionDenied):
        await g.send()


@pytest.mark.parametrize(
    ("target", "deny", "refusal"),
    [
        ("MEMBER", Permission.SEND_MESSAGES, PermissionDenied),
        ("ROLE", Permission.SEND_MESSAGES, PermissionDenied),
        ("ROLE", Permission.VIEW_CHANNEL, NotFound),
    ],
)
async def test_an_overwrite_that_denies_is_refused_at_once(
    database: Database, target: str, deny: Permission, refusal: type[Exception]
) -> None:
    g = await guild(database)
    await g.send_kept()
    target_id = MEMBER.user_id if target == "MEMBER" else g.server_id  # @everyone's id is the server's
    spec = overwrites.OverwriteSpec(g.channel_id, target, target_id, Permission(0), deny)
    await g.change(lambda uow: overwrites.set_overwrite(uow, OWNER, spec))
    with pytest.raises(refusal):
        await g.send()


@pytest.mark.parametrize("how", ["kicked", "banned", "left"])
async def test_a_member_who_goes_is_refused_at_once(database: Database, how: str) -> None:
    g = await guild(database)
    await g.send_kept()
    if how == "kicked":
        await g.change(lambda uow: moderation.kick_member(uow, OWNER, g.server_id, MEMBER.user_id, None))
    elif how == "banned":
        await g.change(lambda uow: moderation.ban_member(uow, OWNER, g.server_id, MEMBER.user_id, None))
    else:
        await g.change(lambda uow: membership.leave_server(uow, MEMBER, g.server_id))
    with pytest.raises(NotFound):
        await g.send()


async def test_a_timeout_is_refused_at_once_and_its_end_allows_again(database: Database) -> None:
    g = await guild(database)
    await g.send_kept()
    ends = datetime.now(UTC) + timedelta(seconds=1.5)
    await g.change(
        lambda uow: moderation.timeout_member(
            uow, OWNER, g.server_id, MEMBER.user_id, moderation.TimeoutEnd(ends)
        )
    )
    for _ in range(2):  # the second refusal comes from the kept permissions, until the timeout's end
        with pytest.raises(PermissionDenied):
            await g.send()
    await asyncio.sleep((ends - datetime.now(UTC)).total_seconds() + 0.1)
    await g.send()  # a timeout ends without any write: the kept entry ended with it


async def test_a_join_needs_no_announcement(database: Database) -> None:
    g = await guild(database)
    newcomer = Principal(user_id=3003, username="newcomer", token_id=None, expires_at=0)
    for _ in range(2):  # nothing is kept for someone who is not a member
        with pytest.raises(NotFound):
            await g.send(newcomer)
    await g.change(lambda uow: membership.admit(uow, g.server_id, newcomer.user_id, datetime.now(UTC), "id"))
    await g.send(newcomer)


async def test_a_move_into_a_private_folder_is_refused_at_once(database: Database) -> None:
    g = await guild(database)
    folder = await run(
        database,
        lambda uow: channels.create_channel(
            uow, OWNER, channels.NewChannel(g.server_id, "staff", "FOLDER", None)
        ),
    )
    hidden = overwrites.OverwriteSpec(folder.id, "ROLE", g.server_id, Permission(0), Permission.VIEW_CHANNEL)
    await g.change(lambda uow: overwrites.set_overwrite(uow, OWNER, hidden))
    await g.send_kept()
    await g.change(lambda uow: channels.move_channel(uow, OWNER, g.channel_id, folder.id, 0))
    with pytest.raises(NotFound):
        await g.send()


async def test_a_deleted_channel_or_server_is_refused_at_once(database: Database) -> None:
    g = await guild(database)
    await g.send_kept()
    await g.change(lambda uow: channels.delete_channel(uow, OWNER, g.channel_id))
    with pytest.raises(NotFound):
        await g.send()
    other = await guild(database)
    await other.send_kept()
    await other.change(lambda uow: administration.delete_server(uow, OWNER, other.server_id, "Guild"))
    with pytest.raises(NotFound):
        await other.send()


async def test_a_former_owner_holds_only_their_roles_at_once(database: Database) -> None:
    g = await guild(database)
    await everyone_may_not_send(g)
    await g.send_kept(OWNER)  # the owner holds every permission
    await g.change(lambda uow: membership.transfer_ownership(uow, OWNER, g.server_id, MEMBER.user_id))
    with pytest.raises(PermissionDenied):
        await g.send(OWNER)
    await g.send(MEMBER)
