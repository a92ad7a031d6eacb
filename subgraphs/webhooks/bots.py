"""Bot accounts: users flagged `bot`, created in a server by a manager, signing in with a bot token.

A member with Manage Server creates a bot with a username: a user row (flagged `bot`, no password, an
unusable e-mail address, so no sign-in path but the bot token), a member row in the server and its
directory index, and a bot token `<bot id>.<secret>` shown once (only the secret's SHA-256 is kept).
The bot then has the permissions of any member: @everyone's, and the roles managers give it.

The token is exchanged for a short-lived access token of the built-in issuer with the users subgraph's
`botSignIn(token)` (the issuer's key lives there); the router and subgraphs verify that token like any
other. Regenerating or revoking the token stops new exchanges at once; an access token already issued
lives out its lifetime (BEEP_BOT_ACCESS_TOKEN_TTL_SECONDS, 300 s by default).

Cross-context writes, as `kernel/tenancy/access.py` and `kernel/tenancy/audit.py` do for reads and the audit
log: the user row (users context, in the directory) through a light table reference here, the member row
(servers context, in the tenant's shard) through the shared `kernel/tenancy/tenant_tables.py`; the arrival is
announced with the servers context's published MemberJoined event.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.ids import DIRECTORY_SHARD, new_id
from db.tenants import index_membership
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_server
from subgraphs.kernel.tenancy import access, directory_tables, tenant_tables
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.tenancy.access_checks import access_server, or_none
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers.events import MemberJoined
from subgraphs.webhooks import repository
from subgraphs.webhooks.models import BotRow
from subgraphs.webhooks.service import hash_token

USERNAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,30}[A-Za-z0-9_])?$")
MAX_BOTS_PER_SERVER = 50
BOT_EMAIL_DOMAIN = "bots.beep.invalid"  # .invalid never resolves: no mail can reach it

_users = directory_tables.users  # the users context's table: a bot is a user


@dataclass(frozen=True)
class BotWithToken:
    row: BotRow
    username: str
    token: str  # shown once


def _new_token(bot_id: int) -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    return f"{bot_id}.{secret}", hash_token(secret)


def split_token(token: str) -> tuple[int, str] | None:
    """(bot id, secret) of a well-formed bot token."""
    head, _, secret = token.strip().partition(".")
    if not head.isdigit() or len(head) > 20 or not 0 < len(secret) <= 128:
        return None
    return int(head), secret


async def _managed_server(uow: UnitOfWork, user_id: int | None, server_id: int) -> ServerAccess:
    """A server where the user holds Manage Server (bots are its managers' to see and change)."""
    return await access_server(
        uow,
        user_id,
        server_id,
        needs=Permission.MANAGE_SERVER,
        refusal="You need Manage Server to manage bots.",
    )


async def create_bot(uow: UnitOfWork, principal: Principal, server_id: int, username: str) -> BotWithToken:
    name = username.strip()
    if not USERNAME_RE.match(name):
        raise ValidationFailed(
            "A username has 2-32 letters, digits, '_' or '.', not starting or ending with '.'.",
            code=ErrorCode.INVALID_FORMAT,
            field="username",
        )
    await _managed_server(uow, principal.user_id, server_id)
    directory = uow.directory()
    if len(await repository.bots_of_server(directory, server_id)) >= MAX_BOTS_PER_SERVER:
        raise ValidationFailed(
            f"A server has at most {MAX_BOTS_PER_SERVER} bots.",
            code=ErrorCode.LIMIT_REACHED,
            field="serverId",
        )
    taken = await directory.scalar(sa.select(_users.c.id).where(_users.c.username_key == name.casefold()))
    if taken is not None:
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN, field="username")
    bot_id = new_id(DIRECTORY_SHARD)
    token, digest = _new_token(bot_id)
    now = datetime.now(UTC)
    await directory.execute(
        sa.insert(_users).values(
            id=bot_id,
            username=name,
            username_key=name.casefold(),
            email=f"bot-{bot_id}@{BOT_EMAIL_DOMAIN}",
            password_hash="",  # no password: the bot token is its only credential
            first_name=name,
            last_name="",
            bot=True,
        )
    )
    try:
        await directory.flush()
    except IntegrityError as error:  # the same username raced in
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN, field="username") from error
    row = BotRow(
        user_id=bot_id, server_id=server_id, creator_id=principal.user_id, token_hash=digest, created_at=now
    )
    directory.add(row)
    session = await uow.for_entity(server_id)
    await access.lock_tenant(session, server_id)
    await session.execute(
        sa.insert(tenant_tables.members).values(server_id=server_id, user_id=bot_id, joined_at=now)
    )
    index_membership(directory, bot_id, server_id, now)
    # Announced as any member's arrival (the servers context's published event): member lists and
    # serverEvents show the bot at once.
    uow.emit(topic_for_server(server_id), MemberJoined(server_id, bot_id))
    return BotWithToken(row, name, token)


async def managed_bot(uow: UnitOfWork, principal: Principal, bot_id: int) -> BotRow:
    row = await repository.bot_by_id(uow.directory(), bot_id)
    if row is None:
        raise NotFound("No such bot.", field="botId")
    if await or_none(_managed_server(uow, principal.user_id, row.server_id)) is None:
        raise NotFound("No such bot.", field="botId")  # a bot is seen only by its server's managers
    return row


async def regenerate_token(uow: UnitOfWork, principal: Principal, bot_id: int) -> str:
    row = await managed_bot(uow, principal, bot_id)
    token, row.token_hash = _new_token(row.user_id)
    return token


async def revoke_token(uow: UnitOfWork, principal: Principal, bot_id: int) -> BotRow:
    row = await managed_bot(uow, principal, bot_id)
    row.token_hash = None
    return row


async def bots_of(uow: UnitOfWork, user_id: int | None, server_id: int) -> list[BotRow] | None:
    """A server's bots, for its managers (Manage Server); None for anyone else."""
    if await or_none(_managed_server(uow, user_id, server_id)) is None:
        return None
    return await repository.bots_of_server(uow.directory(), server_id)
