"""Rules of changing a server's settings and of destroying it. Never commits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete

from db.locator import Relocation
from db.tenants import Tenant
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access_checks import Need, check_server
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text
from subgraphs.servers import repository
from subgraphs.servers.events import ServerDeleted, ServerUpdated
from subgraphs.servers.models import ServerRow

NAME_LENGTH = (2, 100)
MAX_DESCRIPTION = 1000
VISIBILITIES = ("PUBLIC", "PRIVATE")
NEED_MANAGE_SERVER = "You need the Manage Server permission."


def clean_name(name: str) -> str:
    return clean_text(name, "name", min_len=NAME_LENGTH[0], max_len=NAME_LENGTH[1])


def clean_description(description: str) -> str:
    return clean_text(description, "description", min_len=0, max_len=MAX_DESCRIPTION, multiline=True)


def check_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise ValidationFailed("Visibility must be PUBLIC or PRIVATE.", field="visibility")
    return visibility


@dataclass(frozen=True)
class ServerChanges:
    name: str | None = None  # None: unchanged
    description: str | None = None
    visibility: str | None = None


def snapshot(server: ServerRow) -> dict[str, object]:
    return {"name": server.name, "description": server.description, "visibility": server.visibility}


async def joined_server(
    uow: UnitOfWork, principal: Principal, server_id: int, *, needs: Need | None = None, refusal: str = ""
) -> ServerRow:
    """The server (locked; not a DM: conversations are the friends context's) of a member holding `needs`:
    `check_server` on the locked row's access."""
    session = await uow.for_entity(server_id)
    server = await repository.lock_server(session, server_id)
    found = await access.server_access(session, server_id, principal.user_id) if server else None
    if server is None or server.kind != "SERVER":
        raise NotFound("No such server.", field="serverId")
    check_server(found, needs=needs, refusal=refusal)
    return server


async def managed_server(uow: UnitOfWork, principal: Principal, server_id: int) -> ServerRow:
    """The server (locked) for a member with Manage Server; `NotFound` or `PermissionDenied` otherwise."""
    return await joined_server(
        uow, principal, server_id, needs=Permission.MANAGE_SERVER, refusal=NEED_MANAGE_SERVER
    )


async def record_update(
    uow: UnitOfWork,
    principal: Principal,
    server: ServerRow,
    before: dict[str, object],
    after: dict[str, object],
) -> None:
    """Flush a change of the server's settings, audit-log it and tell its members."""
    await (await uow.for_entity(server.id)).flush()
    await audit.record(
        uow,
        server.id,
        principal.user_id,
        AuditAction.SERVER_UPDATE,
        ("SERVER", server.id),
        before=before,
        after=after,
    )
    uow.emit(
        topic_for_server(server.id),
        ServerUpdated(server.id, server.name, server.description, server.visibility),
    )


async def update_server(
    uow: UnitOfWork, principal: Principal, server_id: int, changes: ServerChanges
) -> ServerRow:
    name = clean_name(changes.name) if changes.name is not None else None
    description = clean_description(changes.description) if changes.description is not None else None
    visibility = check_visibility(changes.visibility) if changes.visibility is not None else None
    server = await managed_server(uow, principal, server_id)
    before = snapshot(server)
    server.name = name if name is not None else server.name
    server.description = description if description is not None else server.description
    server.visibility = visibility if visibility is not None else server.visibility
    after = snapshot(server)
    if after == before:
        return server  # nothing changes, nothing is announced
    await record_update(uow, principal, server, before, after)
    if after["visibility"] != before["visibility"]:
        access_changed(uow.emit, server_id)  # who may see the server changed
    return server


async def delete_server(
    uow: UnitOfWork, principal: Principal, server_id: int, confirm_name: str
) -> list[str | None]:
    """Destroy a server and everything in it, on every store. Only its owner may, naming it exactly.

    The shard: the server row, whose foreign keys cascade to every tenant row (members, roles, channels
    and through them messages, overwrites and webhooks; bans, timeouts, the audit log) in one statement.
    The directory: the tenant row, cascading to invite codes, membership index entries and invitations.
    Stores outside the databases (search cores) follow `ServerDeleted` once they exist. Returns the
    media/ keys of the server's files, for the caller to delete once the transaction has committed.
    """
    server = await joined_server(uow, principal, server_id)
    if server.owner_id != principal.user_id:
        raise PermissionDenied("Only the owner can delete a server.", field="serverId")
    if confirm_name != server.name:
        raise ValidationFailed(
            "Type the server's name exactly to confirm.",
            code=ErrorCode.CONFIRMATION_MISMATCH,
            field="confirmName",
        )
    session = await uow.for_entity(server_id)
    await session.delete(server)
    await session.flush()
    await uow.directory().execute(delete(Relocation).where(Relocation.tenant_id == server_id))
    await uow.directory().execute(delete(Tenant).where(Tenant.id == server_id))
    uow.emit(topic_for_server(server_id), ServerDeleted(server_id))
    access_changed(uow.emit, server_id)  # every live stream of it re-checks, finds nothing and ends
    return [server.picture_key, server.banner_key]


async def read_audit_log(
    uow: UnitOfWork,
    user_id: int | None,
    server_id: int,
    *,
    limit: int,
    before_id: int | None,
    action: AuditAction | None,
    actor_id: int | None,
) -> list[audit.AuditEntry] | None:
    """The log, for members with View Audit Log; None for anyone else (as for a missing server)."""
    session = await uow.for_entity(server_id)
    if await access.member_holding(session, server_id, user_id, Permission.VIEW_AUDIT_LOG) is None:
        return None
    return await audit.entries(
        session, server_id, limit=limit, before_id=before_id, action=action, actor_id=actor_id
    )
