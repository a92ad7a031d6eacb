"""Light references to the directory tables that more than their owner reads or writes: one set, shared
(the directory counterpart of kernel/tenancy/tenant_tables.py), and the only one: no other module redeclares
them (tests/unit/test_table_declarations.py).

The friends context's tables: presence tells a user's friends (`kernel/web/presence.py`), messages flag the
authors a reader blocked (`messages/repository.py`), and the notifications consumer checks that a friend
request or friendship still stands and skips whoever blocked an author (`users/notifications/repository.py`).
The users context's `users`: presence reads a chosen status, messages resolve @mentions
(`messages/mentions.py`), friends find people by username and lock a pair (`friends/repository.py`),
servers check an invitee exists (`servers/invitations.py`), and the webhooks context creates a bot's user
(`webhooks/bots.py`). The webhooks context's `bots`: the users context signs a bot in (`users/bots.py`).

The owners' models stay the source of truth for DDL; these name only the columns those uses need, in a
metadata of their own so neither Alembic nor the owner's metadata sees them.
"""

from __future__ import annotations

import sqlalchemy as sa

_refs = sa.MetaData()

friend_requests = sa.Table("friend_requests", _refs, sa.Column("id", sa.BigInteger, primary_key=True))
friendships = sa.Table(
    "friendships",
    _refs,
    sa.Column("user_low_id", sa.BigInteger, primary_key=True),
    sa.Column("user_high_id", sa.BigInteger, primary_key=True),
)
user_blocks = sa.Table(
    "user_blocks",
    _refs,
    sa.Column("blocker_id", sa.BigInteger, primary_key=True),
    sa.Column("blocked_id", sa.BigInteger, primary_key=True),
)
users = sa.Table(
    "users",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("username", sa.String),
    sa.Column("username_key", sa.String),
    sa.Column("email", sa.String),
    sa.Column("password_hash", sa.String),
    sa.Column("first_name", sa.String),
    sa.Column("last_name", sa.String),
    sa.Column("bot", sa.Boolean),
    sa.Column("status", sa.String),
)
bots = sa.Table(
    "bots",
    _refs,
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("token_hash", sa.String),
)
