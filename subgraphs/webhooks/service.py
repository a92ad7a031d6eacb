"""Rules of channel webhooks: who manages them, their secret tokens, executing them. Never commits.

A webhook belongs to a text channel; members with Manage Webhooks there create, list, edit (name,
avatar, another text channel of the same server where they also hold it), regenerate and delete it. Its
token is shown once (creation, regeneration): only its SHA-256 is stored. Executing it needs its id and
token and no account; it posts in its channel as itself (`subgraphs/messages/webhook_posts.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    AuthenticationFailed,
    ErrorCode,
    NotFound,
    ValidationFailed,
)
from subgraphs.kernel.tenancy import audit
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.access_checks import READ, access_channel, or_none
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text
from subgraphs.messages import api as messages
from subgraphs.webhooks import repository
from subgraphs.webhooks.models import WebhookRow

MAX_NAME = 80
MAX_PER_CHANNEL = 15  # Discord's limit
TOKEN_BYTES = 48  # 64 URL-safe characters


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh secret and its hash (the only thing stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


@dataclass(frozen=True)
class WebhookWithToken:
    row: WebhookRow
    token: str  # shown once


def _name(raw: str, field: str = "name") -> str:
    name = clean_text(raw, field, min_len=1, max_len=MAX_NAME)
    lowered = name.lower()
    if "clyde" in lowered or "discord" in lowered:  # Discord's rule, so tooling behaves the same
        raise ValidationFailed(f'{field} cannot contain "clyde" or "discord".', field=field)
    return name


def _avatar(raw: str | None, field: str = "avatarUrl") -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return messages.url(raw.strip(), (field,))
    except messages.PayloadProblem as problem:
        raise ValidationFailed(problem.message, code=problem.code, field=field) from problem


NEED_MANAGE_WEBHOOKS = "You need Manage Webhooks in this channel."


async def access_webhooks_channel(
    uow: UnitOfWork, user_id: int | None, channel_id: int, field: str = "channelId"
) -> ChannelAccess:
    """A channel where the user holds Manage Webhooks; "not found" when they cannot see it."""
    return await access_channel(
        uow, user_id, channel_id, needs=Permission.MANAGE_WEBHOOKS, refusal=NEED_MANAGE_WEBHOOKS, field=field
    )


async def _managed_channel(uow: UnitOfWork, user_id: int, channel_id: int, field: str) -> ChannelAccess:
    """A text channel where the user holds Manage Webhooks (its kind checked after the permission)."""
    channel = await access_webhooks_channel(uow, user_id, channel_id, field)
    if channel.kind != "TEXT":
        raise ValidationFailed("Webhooks post in text channels only.", field=field)
    return channel


async def managed_channel_or_none(
    uow: UnitOfWork, user_id: int | None, channel_id: int
) -> ChannelAccess | None:
    """The channel's access if the user may manage its webhooks; None for missing and forbidden alike."""
    if user_id is None:
        return None
    return await or_none(access_webhooks_channel(uow, user_id, channel_id))


async def can_read(uow: UnitOfWork, user_id: int | None, channel_id: int) -> bool:
    """Whether the user may read the channel's messages (to resolve a posted message for them)."""
    if user_id is None:
        return False
    return await or_none(access_channel(uow, user_id, channel_id, seen_with=READ)) is not None


async def webhooks_of_channel(uow: UnitOfWork, channel_id: int) -> list[WebhookRow]:
    return await repository.webhooks_of_channel(await uow.for_entity(channel_id), channel_id)


async def access_webhook(uow: UnitOfWork, user_id: int | None, webhook_id: int) -> WebhookRow:
    """A live webhook the user manages (Manage Webhooks in its channel); "No such webhook." for missing
    and forbidden alike (a webhook is seen only by its managers)."""
    row = await repository.webhook_by_id(await uow.for_entity(webhook_id), webhook_id)
    if row is None or row.deleted_at is not None:
        raise NotFound("No such webhook.", field="id")
    if await or_none(access_webhooks_channel(uow, user_id, row.channel_id)) is None:
        raise NotFound("No such webhook.", field="id")
    return row


async def managed_webhook(uow: UnitOfWork, user_id: int | None, webhook_id: int) -> WebhookRow | None:
    """`access_webhook` for a query: None for missing and forbidden."""
    if user_id is None:
        return None
    return await or_none(access_webhook(uow, user_id, webhook_id))


def _snapshot(row: WebhookRow) -> dict[str, Any]:
    return {"name": row.name, "avatarUrl": row.avatar_url, "channelId": row.channel_id}


async def _audit(
    uow: UnitOfWork, principal: Principal, row: WebhookRow, action: AuditAction, **what: Any
) -> None:
    await audit.record(uow, row.server_id, principal.user_id, action, ("WEBHOOK", row.id), **what)


async def _check_room(session: AsyncSession, channel_id: int) -> None:
    if await repository.count_of_channel(session, channel_id) >= MAX_PER_CHANNEL:
        raise ValidationFailed(
            f"A channel has at most {MAX_PER_CHANNEL} webhooks.",
            code=ErrorCode.LIMIT_REACHED,
            field="channelId",
        )


async def create_webhook(
    uow: UnitOfWork, principal: Principal, channel_id: int, name: str, avatar_url: str | None
) -> WebhookWithToken:
    clean_name, avatar = _name(name), _avatar(avatar_url)
    channel = await _managed_channel(uow, principal.user_id, channel_id, "channelId")
    session = await uow.for_entity(channel_id)
    await _check_room(session, channel_id)
    token, digest = new_token()
    row = WebhookRow(
        id=new_id(await uow.shard_for(channel_id)),
        server_id=channel.server.server_id,
        channel_id=channel_id,
        name=clean_name,
        avatar_url=avatar,
        token_hash=digest,
        creator_id=principal.user_id,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    await _audit(uow, principal, row, AuditAction.WEBHOOK_CREATE, after=_snapshot(row))
    return WebhookWithToken(row, token)


_UNSET: Any = object()


async def update_webhook(
    uow: UnitOfWork,
    principal: Principal,
    webhook_id: int,
    *,
    name: str | None = None,
    avatar_url: str | None = _UNSET,
    channel_id: int | None = None,
) -> WebhookRow:
    """Change what is given: the name, the avatar (None or "" removes it), the channel (a text channel of
    the same server where the caller holds Manage Webhooks too)."""
    row = await access_webhook(uow, principal.user_id, webhook_id)
    before = _snapshot(row)
    if name is not None:
        row.name = _name(name)
    if avatar_url is not _UNSET:
        row.avatar_url = _avatar(avatar_url)
    if channel_id is not None and channel_id != row.channel_id:
        target = await _managed_channel(uow, principal.user_id, channel_id, "channelId")
        if target.server.server_id != row.server_id:
            raise NotFound("No such channel.", field="channelId")  # another server's: not ours to name
        session = await uow.for_entity(channel_id)
        await _check_room(session, channel_id)
        row.channel_id = channel_id
    after = _snapshot(row)
    if after != before:
        await _audit(uow, principal, row, AuditAction.WEBHOOK_UPDATE, before=before, after=after)
    return row


async def regenerate_token(uow: UnitOfWork, principal: Principal, webhook_id: int) -> WebhookWithToken:
    """A new secret; the old one stops working at once."""
    row = await access_webhook(uow, principal.user_id, webhook_id)
    token, row.token_hash = new_token()
    await _audit(uow, principal, row, AuditAction.WEBHOOK_UPDATE, context={"token": "regenerated"})
    return WebhookWithToken(row, token)


async def delete_webhook(uow: UnitOfWork, principal: Principal, webhook_id: int) -> WebhookRow:
    row = await access_webhook(uow, principal.user_id, webhook_id)
    row.deleted_at = datetime.now(UTC)
    await _audit(uow, principal, row, AuditAction.WEBHOOK_DELETE, before=_snapshot(row))
    return row


class WebhookGone(NotFound):
    """The token is right but the webhook was deleted."""


async def authenticate(uow: UnitOfWork, webhook_id: int | None, token: str) -> WebhookRow:
    """The live webhook these credentials name. A missing webhook and a wrong (or replaced) token are the
    same AuthenticationFailed, so the answer never says whether an id exists; only the holder of a
    deleted webhook's last token learns that it is gone (WebhookGone)."""
    row = None
    if webhook_id is not None and 0 < len(token) <= 256:
        row = await repository.webhook_by_id(await uow.for_entity(webhook_id), webhook_id)
    expected = row.token_hash if row is not None else hash_token("-")
    if row is None or not hmac.compare_digest(expected, hash_token(token)):
        raise AuthenticationFailed("Invalid webhook token.", field="token")
    if row.deleted_at is not None:
        raise WebhookGone("Unknown webhook.", field="id")
    return row
