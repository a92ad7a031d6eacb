"""Light references to the tenant tables that more than their owner reads or writes: one set, shared.

`kernel/tenancy/access.py` reads membership, roles and channel placement through them for every subgraph; the
friends context writes a conversation's tenant (a server of kind DM or GROUP_DM: its server row,
@everyone role, members and one text channel) and erases it through them
(`subgraphs/friends/conversations.py`); the servers context writes a new server's default channels
(`servers/service.py`); the webhooks context adds a bot's member row
(`subgraphs/webhooks/bots.py`); `kernel/tenancy/attachment_files.py` checks that a purged server, channel or
attachment is gone and which stored keys are still live; the messages context resolves `#channel`
mentions (`messages/mentions.py`) and the notifications consumer finds a replied-to message's author
(`users/notifications/repository.py`). The owners' models (servers, channels and messages contexts)
stay the source of truth for DDL; these name only the columns those uses need.

Real Table objects (not sa.table()): only those get the per-shard schema translation. A metadata of their
own, so the owners' metadata (and Alembic) never sees them.
"""

from __future__ import annotations

import sqlalchemy as sa

from db.base import SHARD_SCHEMA, UtcDateTime

_refs = sa.MetaData(schema=SHARD_SCHEMA)

servers = sa.Table(
    "servers",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("description", sa.Text),
    sa.Column("visibility", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("owner_id", sa.BigInteger),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("moved_to", sa.Integer),
)
members = sa.Table(
    "members",
    _refs,
    sa.Column("server_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("joined_at", sa.DateTime(timezone=True)),
)
member_timeouts = sa.Table(
    "member_timeouts",
    _refs,
    sa.Column("server_id", sa.BigInteger),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("until", UtcDateTime),
)
roles = sa.Table(
    "roles",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("server_id", sa.BigInteger),
    sa.Column("name", sa.String),
    sa.Column("permissions", sa.BigInteger),
    sa.Column("position", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
member_roles = sa.Table(
    "member_roles",
    _refs,
    sa.Column("server_id", sa.BigInteger),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("role_id", sa.BigInteger),
)
channels = sa.Table(
    "channels",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("server_id", sa.BigInteger),
    sa.Column("name", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("parent_id", sa.BigInteger),
    sa.Column("position", sa.Integer),
    sa.Column("permissions_synced", sa.Boolean),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
channel_overwrites = sa.Table(
    "channel_overwrites",
    _refs,
    sa.Column("channel_id", sa.BigInteger),
    sa.Column("target_kind", sa.String),
    sa.Column("target_id", sa.BigInteger),
    sa.Column("allow", sa.BigInteger),
    sa.Column("deny", sa.BigInteger),
)
messages = sa.Table(
    "messages",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("channel_id", sa.BigInteger),
    sa.Column("author_id", sa.BigInteger),
)
attachments = sa.Table(
    "attachments",
    _refs,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("server_id", sa.BigInteger),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("storage_key", sa.String),
    sa.Column("thumbnail_key", sa.String),
    sa.Column("created_at", UtcDateTime),  # compared with a cutoff: aware on SQLite too
)
read_states = sa.Table(
    "read_states",
    _refs,
    sa.Column("channel_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("server_id", sa.BigInteger),
)
