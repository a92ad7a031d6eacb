"""Rules of a server's picture and banner (Manage Server; audit-logged). Never commits."""

from __future__ import annotations

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers.administration import managed_server, record_update
from subgraphs.servers.models import ServerRow

PICTURE_SLOTS = ("picture", "banner")


def scope_of(server_id: int) -> str:
    """The media/ scope of a server's files (the tenant's, so its attachments can join it later)."""
    return f"t{server_id}"


async def check_manager(uow: UnitOfWork, principal: Principal, server_id: int) -> None:
    """`NotFound` unless a member, `PermissionDenied` without Manage Server."""
    await managed_server(uow, principal, server_id)


async def set_server_picture(
    uow: UnitOfWork, principal: Principal, server_id: int, slot: str, key: str | None
) -> tuple[ServerRow, str | None]:
    """Point the server's picture or banner at a stored picture (None: remove it); the key it replaces."""
    if slot not in PICTURE_SLOTS:
        raise ValueError(f"unknown picture slot {slot!r}")
    server = await managed_server(uow, principal, server_id)
    previous: str | None = getattr(server, f"{slot}_key")
    if previous == key:
        return server, None
    setattr(server, f"{slot}_key", key)
    # The object ids, not URLs, in the log: enough to tell one picture from the next.
    await record_update(uow, principal, server, {slot: _object_id(previous)}, {slot: _object_id(key)})
    return server, previous


def _object_id(key: str | None) -> str | None:
    return key.rsplit("/", 1)[-1] if key else None
