"""Light references to the friends context's directory tables that other contexts read: one set, shared
(the directory counterpart of kernel/tenant_tables.py).

Presence tells a user's friends (`kernel/presence.py`), messages flag the authors a reader blocked
(`messages/repository.py`), and the notifications consumer checks that a friend request or friendship
still stands and skips whoever blocked an author (`users/notifications/repository.py`). The friends
context's models stay the source of truth for DDL; these name only the columns those reads need, in a
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
