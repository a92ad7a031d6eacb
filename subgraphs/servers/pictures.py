"""Rules of a server's picture and banner (Manage Server; audit-logged). Never commits."""

from __future__ import annotations

from subgraphs.kernel import audit
from subgraphs.kernel.audit import AuditAction
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import PermissionDenied
from subgraphs.kernel.events import topic_for_server
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.servers.administration import joined_server
from subgraphs.servers.events import ServerUpdated
from subgraphs.servers.models import ServerRow

PICTURE_SLOTS = ("picture", "banner")


def scope_of(server_id: int) -> str:
    """The media/ scope of a server's files (the tenant's, so its attachments can join it later)."""
    return f"t{server_id}"


async def check_manager(uow: UnitOfWork, principal: Principal, server_id: int) -> None:
    """`NotFound` unless a member, `PermissionDenied` without Manage Server."""
    _server, may_manage = await joined_server(uow, principal, server_id)
    if not may_manage:
        raise PermissionDenied("You need the Manage Server permission.", field="serverId")


async def set_server_picture(
    uow: UnitOfWork, principal: Principal, server_id: int, slot: str, key: str | None
) -> tuple[ServerRow, str | None]:
    """Point the server's picture or banner at a stored picture (None: remove it); the key it replaces."""
    if slot not in PICTURE_SLOTS:
        raise ValueError(f"unknown picture slot {slot!r}")
    await check_manager(uow, principal, server_id)
    server, _ = await joined_server(uow, principal, server_id)
    previous: str | None = getattr(server, f"{slot}_key")
    if previous == key:
        return server, None
    setattr(server, f"{slot}_key", key)
    await (await uow.for_entity(server_id)).flush()
    await audit.record(
        uow,
        server_id,
        principal.user_id,
        AuditAction.SERVER_UPDATE,
        ("SERVER", server_id),
        # The object ids, not URLs: enough to tell one picture from the next.
        before={slot: _object_id(previous)},
        after={slot: _object_id(key)},
    )
    uow.emit(
        topic_for_server(server_id),
        ServerUpdated(server_id, server.name, server.description, server.visibility),
    )
    return server, previous


def _object_id(key: str | None) -> str | None:
    return key.rsplit("/", 1)[-1] if key else None
