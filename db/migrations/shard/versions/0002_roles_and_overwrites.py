"""Roles, member roles and channel permission overwrites; every existing server gets its @everyone role.

Revision ID: s0002
Revises: s0001
"""

from alembic import op
import sqlalchemy as sa

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None

S = "shard"
NOW = sa.text("CURRENT_TIMESTAMP")
# subgraphs.kernel.tenancy.permissions.DEFAULT_MEMBER_PERMISSIONS when this migration was written (frozen
# here: a migration must not change meaning when the code does).
DEFAULT_EVERYONE = 70372929


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_roles_server_id_servers"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("permissions", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_roles_server_position", "roles", ["server_id", "position"], schema=S)
    op.create_table(
        "member_roles",
        sa.Column("server_id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "role_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.roles.id", ondelete="CASCADE", name="fk_member_roles_role_id_roles"),
            primary_key=True,
        ),
        sa.ForeignKeyConstraint(
            ["server_id", "user_id"],
            [f"{S}.members.server_id", f"{S}.members.user_id"],
            ondelete="CASCADE",
            name="fk_member_roles_server_id_members",
        ),
        schema=S,
    )
    op.create_table(
        "channel_overwrites",
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey(
                f"{S}.channels.id", ondelete="CASCADE", name="fk_channel_overwrites_channel_id_channels"
            ),
            primary_key=True,
        ),
        sa.Column("target_kind", sa.String(8), primary_key=True),
        sa.Column("target_id", sa.BigInteger(), primary_key=True),
        sa.Column("allow", sa.BigInteger(), nullable=False),
        sa.Column("deny", sa.BigInteger(), nullable=False),
        schema=S,
    )
    # ALTER statements name their table by string, which the schema translation does not reach: use the
    # shard's real schema (the version table's; None on SQLite, where the file is the shard).
    real_schema = op.get_context().version_table_schema
    op.add_column(
        "channels",
        sa.Column("permissions_synced", sa.Boolean(), server_default=sa.true(), nullable=False),
        schema=real_schema,
    )
    # Table objects (not text) so the shard's schema translation applies.
    meta = sa.MetaData(schema=S)
    servers = sa.Table("servers", meta, sa.Column("id", sa.BigInteger))
    roles = sa.Table(
        "roles",
        meta,
        *(sa.Column(c, sa.BigInteger) for c in ("id", "server_id", "permissions", "position")),
        sa.Column("name", sa.String),
    )
    everyone = sa.select(
        servers.c.id, servers.c.id, sa.literal("@everyone"), sa.literal(DEFAULT_EVERYONE), sa.literal(0)
    )
    op.execute(roles.insert().from_select(["id", "server_id", "name", "permissions", "position"], everyone))


def downgrade() -> None:
    op.drop_column("channels", "permissions_synced", schema=op.get_context().version_table_schema)
    op.drop_table("channel_overwrites", schema=S)
    op.drop_table("member_roles", schema=S)
    op.drop_table("roles", schema=S)
