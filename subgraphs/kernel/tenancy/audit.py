"""The audit log: who changed what in a server, with before and after. Written by every context.

Like `access`, a sanctioned cross-context table: servers, channels and webhooks all record into the
tenant's `audit_log` (shard migration s0005), in the same transaction as the change itself, so an entry
exists exactly when the change does. The servers context reads it back for managers (VIEW_AUDIT_LOG).
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase
from db.ids import new_id
from subgraphs.kernel.logging import AUDIT_LOGGER
from subgraphs.kernel.tenancy.uow import UnitOfWork

# The audit stream (docs/logging.md): each entry once more as a log line, once its change is committed,
# for an operator's log search across tenants. Which fields changed, not their values (names, topics...).
stream = logging.getLogger(AUDIT_LOGGER)


class AuditAction(enum.Enum):
    SERVER_UPDATE = "SERVER_UPDATE"
    OWNERSHIP_TRANSFER = "OWNERSHIP_TRANSFER"
    ROLE_CREATE = "ROLE_CREATE"
    ROLE_UPDATE = "ROLE_UPDATE"
    ROLE_DELETE = "ROLE_DELETE"
    MEMBER_ROLE_ADD = "MEMBER_ROLE_ADD"
    MEMBER_ROLE_REMOVE = "MEMBER_ROLE_REMOVE"
    MEMBER_KICK = "MEMBER_KICK"
    MEMBER_BAN = "MEMBER_BAN"
    MEMBER_UNBAN = "MEMBER_UNBAN"
    MEMBER_TIMEOUT = "MEMBER_TIMEOUT"
    CHANNEL_CREATE = "CHANNEL_CREATE"
    CHANNEL_UPDATE = "CHANNEL_UPDATE"
    CHANNEL_DELETE = "CHANNEL_DELETE"
    CHANNEL_OVERWRITE_SET = "CHANNEL_OVERWRITE_SET"
    CHANNEL_OVERWRITE_DELETE = "CHANNEL_OVERWRITE_DELETE"
    INVITE_CREATE = "INVITE_CREATE"
    INVITE_REVOKE = "INVITE_REVOKE"
    INVITATION_SEND = "INVITATION_SEND"
    WEBHOOK_CREATE = "WEBHOOK_CREATE"
    WEBHOOK_UPDATE = "WEBHOOK_UPDATE"
    WEBHOOK_DELETE = "WEBHOOK_DELETE"


class AuditLogRow(ShardBase):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(ForeignKey("shard.servers.id", ondelete="CASCADE"))
    actor_id: Mapped[int]
    action: Mapped[str] = mapped_column(sa.String(48))
    target_kind: Mapped[str] = mapped_column(sa.String(16))
    target_id: Mapped[int | None]
    changes: Mapped[str] = mapped_column(sa.Text)  # JSON: {"changes": [...], "context": {...}}
    reason: Mapped[str | None] = mapped_column(sa.String(512))
    created_at: Mapped[datetime]


AUDIT_LOG = AuditLogRow.__table__


@dataclass(frozen=True)
class Change:
    """One field's value before and after (None: absent, e.g. before a creation)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class AuditEntry:
    id: int
    server_id: int
    actor_id: int
    action: AuditAction
    target_kind: str
    target_id: int | None
    changes: tuple[Change, ...]
    context: dict[str, Any]
    reason: str | None
    created_at: datetime


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """The fields that differ between two snapshots (a creation has no `before`, a deletion no `after`)."""
    old, new = before or {}, after or {}
    return [
        Change(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


async def record(
    uow: UnitOfWork,
    server_id: int,
    actor_id: int,
    action: AuditAction,
    target: tuple[str, int | None],
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Add an entry to the tenant's log in the unit of work's transaction. `target`: (kind, id), e.g.
    ("ROLE", role.id); `before`/`after`: snapshots of the fields that matter (only differences are kept);
    `context`: what identifies the change beyond its target (e.g. whom a channel overwrite names)."""
    payload = {
        "changes": [
            {"field": c.field, "before": _plain(c.before), "after": _plain(c.after)}
            for c in diff(before, after)
        ],
        "context": {key: _plain(value) for key, value in (context or {}).items()},
    }
    session = await uow.for_entity(server_id)
    target_kind, target_id = target
    line = {
        "action": action.value,
        "server_id": str(server_id),
        "actor_id": str(actor_id),
        "target_kind": target_kind,
        "target_id": None if target_id is None else str(target_id),
        "fields": [change.field for change in diff(before, after)],
    }
    uow.after_commit(lambda: stream.info("audit %s", action.value, extra=line))
    await session.execute(
        sa.insert(AuditLogRow).values(
            id=new_id(await uow.shard_for(server_id)),
            server_id=server_id,
            actor_id=actor_id,
            action=action.value,
            target_kind=target_kind,
            target_id=target_id,
            changes=json.dumps(payload, separators=(",", ":")),
            reason=reason,
            created_at=datetime.now(UTC),
        )
    )


async def entries(
    session: AsyncSession,
    server_id: int,
    *,
    limit: int,
    before_id: int | None = None,
    action: AuditAction | None = None,
    actor_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first; `before_id` pages back (IDs are time-ordered)."""
    query = sa.select(AUDIT_LOG).where(AUDIT_LOG.c.server_id == server_id)
    if before_id is not None:
        query = query.where(AUDIT_LOG.c.id < before_id)
    if action is not None:
        query = query.where(AUDIT_LOG.c.action == action.value)
    if actor_id is not None:
        query = query.where(AUDIT_LOG.c.actor_id == actor_id)
    rows = await session.execute(query.order_by(AUDIT_LOG.c.id.desc()).limit(limit))
    found = []
    for row in rows:
        stored = json.loads(row.changes)
        found.append(
            AuditEntry(
                id=row.id,
                server_id=row.server_id,
                actor_id=row.actor_id,
                action=AuditAction(row.action),
                target_kind=row.target_kind,
                target_id=row.target_id,
                changes=tuple(Change(c["field"], c["before"], c["after"]) for c in stored["changes"]),
                context=stored["context"],
                reason=row.reason,
                created_at=row.created_at,
            )
        )
    return found


def _plain(value: Any) -> Any:
    """JSON-safe: IDs and bitsets as decimal strings (they exceed JavaScript's safe integers)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)
