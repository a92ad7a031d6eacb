"""Rules of the servers context: creating servers (tenants) and joining them. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from db.tenants import choose_shard, register_tenant
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import NotFound
from subgraphs.kernel.events.catalogue import topic_for_server, topic_for_user
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.permissions import DEFAULT_MEMBER_PERMISSIONS
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import administration, membership, repository
from subgraphs.servers.events import MemberJoined, ServerCreated
from subgraphs.servers.models import RoleRow, ServerRow


@dataclass(frozen=True)
class NewServer:
    name: str
    visibility: str
    description: str | None


async def create_server(
    uow: UnitOfWork, principal: Principal, data: NewServer, logical_shards: int
) -> ServerRow:
    name = administration.clean_name(data.name)
    description = administration.clean_description(data.description or "")
    administration.check_visibility(data.visibility)
    server_id = new_id(choose_shard(logical_shards))
    now = datetime.now(UTC)
    server = ServerRow(
        id=server_id,
        name=name,
        description=description,
        visibility=data.visibility,
        kind="SERVER",
        owner_id=principal.user_id,
        created_at=now,
    )
    session = await uow.for_entity(server_id)
    repository.add_server(session, server)
    await session.flush()  # the member row references the server
    await register_tenant(uow.directory(), server_id, "SERVER")
    await uow.directory().flush()  # the membership index references the tenant
    await membership.enrol(uow, server_id, principal.user_id, now)
    repository.add_role(session, everyone_role(server_id, now))
    await add_default_channels(session, server_id, now)
    uow.emit(topic_for_user(principal.user_id), ServerCreated(server_id, principal.user_id, name))
    return server


# A new server starts as Discord's does: somewhere to talk and somewhere to call, at the top level.
DEFAULT_CHANNELS = (("general", "TEXT"), ("General", "VOICE"))


async def add_default_channels(session: AsyncSession, server_id: int, now: datetime) -> None:
    """The default channels of a new server, in its transaction. The channels context owns them; they are
    written through the kernel's shared table reference, as a conversation's channel is
    (friends/conversations.py). Nobody can watch the server yet, so no event announces them."""
    for position, (name, kind) in enumerate(DEFAULT_CHANNELS):
        await repository.add_channel(session, server_id, name, kind, position, now)


def everyone_role(server_id: int, now: datetime) -> RoleRow:
    """The role every member has; Discord's convention: its id is the server's."""
    return RoleRow(
        id=server_id,
        server_id=server_id,
        name="@everyone",
        permissions=int(DEFAULT_MEMBER_PERMISSIONS),
        position=0,
        created_at=now,
    )


async def join_server(uow: UnitOfWork, principal: Principal, server_id: int) -> ServerRow:
    session = await uow.for_entity(server_id)
    # Not `access_server`: a joiner is no member yet; what they may see and join is a public server.
    found = await access.server_access(session, server_id, principal.user_id)
    if found is None or found.visibility != "PUBLIC":
        # Private servers are joined through invites (communities issue); existence does not leak.
        raise NotFound("No such server.", field="serverId")
    await membership.admit(uow, server_id, principal.user_id, datetime.now(UTC), "serverId")
    uow.emit(topic_for_server(server_id), MemberJoined(server_id, principal.user_id))
    server = await repository.server_by_id(session, server_id)
    assert server is not None
    return server
