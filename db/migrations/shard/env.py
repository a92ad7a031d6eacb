"""Alembic entry point of the shard stream; the environment is shared (db/alembic_env.py)."""

from db.alembic_env import run_migrations

run_migrations()
