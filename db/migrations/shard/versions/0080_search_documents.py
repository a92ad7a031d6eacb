"""Message search, SQL backend: documents, their mentions, and the word index of each dialect.

SQLite: an FTS5 table `search_fts` (rowid = message id) kept equal to the documents by triggers (so
cascades from messages, channels and servers, and a tenant move's copy, keep it right). PostgreSQL: a
GIN index over `to_tsvector('simple', terms)` (the query uses the very same expression).

Revision ID: s0080
Revises: s0050
"""

from alembic import op
import sqlalchemy as sa

revision = "s0080"
down_revision = "s0050"
branch_labels = None
depends_on = None

S = "shard"


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column(
            "message_id",
            sa.BigInteger(),
            sa.ForeignKey(
                f"{S}.messages.id", ondelete="CASCADE", name="fk_search_documents_message_id_messages"
            ),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("has_link", sa.Boolean(), nullable=False),
        sa.Column("has_file", sa.Boolean(), nullable=False),
        sa.Column("has_image", sa.Boolean(), nullable=False),
        schema=S,
    )
    op.create_index(
        "ix_search_documents_channel_id_message_id",
        "search_documents",
        ["channel_id", "message_id"],
        schema=S,
    )
    op.create_index("ix_search_documents_server_id", "search_documents", ["server_id"], schema=S)
    op.create_table(
        "search_mentions",
        sa.Column(
            "message_id",
            sa.BigInteger(),
            sa.ForeignKey(
                f"{S}.search_documents.message_id",
                ondelete="CASCADE",
                name="fk_search_mentions_message_id_search_documents",
            ),
            primary_key=True,
        ),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        schema=S,
    )
    op.create_index("ix_search_mentions_user_id", "search_mentions", ["user_id", "message_id"], schema=S)
    if op.get_bind().dialect.name == "sqlite":
        # Words are folded by the application (documents.terms_of); the tokenizer only splits them.
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(terms, tokenize = 'unicode61 remove_diacritics 0')"
        )
        # The FTS5 rows follow the documents however they are written (the indexer, a tenant move's
        # copy) or deleted (the indexer, a cascade from messages, channels or servers).
        op.execute(
            "CREATE TRIGGER search_documents_fts_insert AFTER INSERT ON search_documents "
            "BEGIN INSERT INTO search_fts (rowid, terms) VALUES (new.message_id, new.terms); END"
        )
        op.execute(
            "CREATE TRIGGER search_documents_fts_update AFTER UPDATE ON search_documents BEGIN "
            "DELETE FROM search_fts WHERE rowid = old.message_id; "
            "INSERT INTO search_fts (rowid, terms) VALUES (new.message_id, new.terms); END"
        )
        op.execute(
            "CREATE TRIGGER search_documents_fts_delete AFTER DELETE ON search_documents "
            "BEGIN DELETE FROM search_fts WHERE rowid = old.message_id; END"
        )
    else:
        op.create_index(
            "ix_search_documents_terms",
            "search_documents",
            [sa.text("to_tsvector('simple'::regconfig, terms)")],
            postgresql_using="gin",
            schema=S,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS search_documents_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_mentions", schema=S)
    op.drop_table("search_documents", schema=S)
