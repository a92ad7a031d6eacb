"""Bot sign-in: a bot token (created by the webhooks context, `subgraphs/webhooks/bots.py`) exchanged for a
short-lived access token of the built-in issuer, whose key this context holds.

The token is `<bot user id>.<secret>`; the directory's `bots` row keeps the secret's SHA-256 (NULL once
revoked). A malformed, unknown, replaced or revoked token is the same INVALID_CREDENTIALS. The access
token lives BEEP_BOT_ACCESS_TOKEN_TTL_SECONDS (300 s): a bot exchanges again when it expires, so a revoked
token stops a bot within that time. Bot tokens do not depend on BEEP_IDENTITY: the built-in issuer's
tokens are trusted in both modes.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from subgraphs.kernel.errors import AuthenticationFailed
from subgraphs.kernel.tenancy import directory_tables
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users.issuer import Issuer
from subgraphs.users.models import UserRow

_bots = directory_tables.bots  # the webhooks context's table (read-only here)


async def bot_sign_in(uow: UnitOfWork, issuer: Issuer, token: str, ttl_seconds: int) -> tuple[str, UserRow]:
    head, _, secret = token.strip().partition(".")
    refused = AuthenticationFailed("Invalid bot token.", field="token")
    if not head.isdigit() or len(head) > 20 or not 0 < len(secret) <= 128:
        raise refused
    directory = uow.directory()
    stored = await directory.scalar(sa.select(_bots.c.token_hash).where(_bots.c.user_id == int(head)))
    digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
    if not hmac.compare_digest(stored or "-" * 64, digest) or stored is None:
        raise refused
    user = await directory.get(UserRow, int(head))
    if user is None or not user.bot:
        raise refused
    return issuer.access_token(user.id, user.username, ttl_seconds=ttl_seconds), user
