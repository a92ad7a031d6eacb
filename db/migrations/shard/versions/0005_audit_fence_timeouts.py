"""Audit log; the moved-tenant fence on servers; timeouts kept apart from membership.

- audit_log: who changed what in a server, with before/after (newest first per server).
- servers.moved_to: set on the old copy when a tenant moves to another shard (`beep tenants move`):
  a write that reaches the old copy sees it and retries against the new one.
- member_timeouts: a timeout outlives leaving and rejoining (members.timeout_until went with the row).

Revision ID: s0005
Revises: s0004
"""

from alembic import op
import sqlalchemy as sa

revision = "s0005"
down_revision = "s0004"
branch_labels = None
depends_on = None

S = "shard"
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_audit_log_server_id_servers"),
            nullable=False,
        ),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_audit_log_server_id_id", "audit_log", ["server_id", "id"], schema=S)
    op.create_table(
        "member_timeouts",
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_member_timeouts_server_id_servers"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    # ALTER names its table by string, which the schema translation does not reach (see s0004).
    real = op.get_context().version_table_schema
    members = sa.table(
        "members", sa.column("server_id"), sa.column("user_id"), sa.column("timeout_until"), schema=real
    )
    timeouts = sa.table(
        "member_timeouts", sa.column("server_id"), sa.column("user_id"), sa.column("until"), schema=real
    )
    op.execute(
        timeouts.insert().from_select(
            ["server_id", "user_id", "until"],
            sa.select(members.c.server_id, members.c.user_id, members.c.timeout_until).where(
                members.c.timeout_until.is_not(None)
            ),
        )
    )
    op.drop_column("members", "timeout_until", schema=real)
    op.add_column(
        "servers",
        sa.Column("moved_to", sa.Integer(), nullable=True),
        schema=real,
    )


def downgrade() -> None:
    op.drop_column("servers", "moved_to", schema=op.get_context().version_table_schema)
    op.add_column(
        "members",
        sa.Column("timeout_until", sa.DateTime(timezone=True), nullable=True),
        schema=op.get_context().version_table_schema,
    )
    op.drop_table("member_timeouts", schema=S)
    op.drop_table("audit_log", schema=S)
