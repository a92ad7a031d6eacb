"""The audit stream (docs/logging.md): an audit entry becomes a `beep.audit` log line once its change has
committed, and never when the transaction rolls back. Against a throwaway SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.engines import Database
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.logging import AUDIT_LOGGER
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import roles
from subgraphs.servers import service as servers
from tests.harness.sqlite_db import in_transaction, migrated_database

OWNER = Principal(user_id=3001, username="owner", token_id=None, expires_at=0)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with migrated_database(tmp_path) as db:
        yield db


class Undone(Exception):
    pass


async def test_an_entry_is_logged_after_commit_only(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async def create(uow: UnitOfWork) -> int:
        return (await servers.create_server(uow, OWNER, servers.NewServer("Guild", "PRIVATE", None), 1)).id

    server_id = await in_transaction(database, create)
    caplog.set_level("INFO", logger=AUDIT_LOGGER)
    caplog.clear()

    # A role created and then undone in the same transaction: nothing in the stream
    async def undone(uow: UnitOfWork) -> None:
        await roles.create_role(uow, OWNER, server_id, "gone", Permission.SEND_MESSAGES)
        assert not [r for r in caplog.records if r.name == AUDIT_LOGGER], "logged before the commit"
        raise Undone

    with pytest.raises(Undone):
        await in_transaction(database, undone)
    assert not [r for r in caplog.records if r.name == AUDIT_LOGGER]

    # A role created for good: one line, naming the action, the server and who
    await in_transaction(
        database, lambda uow: roles.create_role(uow, OWNER, server_id, "kept", Permission.SEND_MESSAGES)
    )
    (line,) = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert (line.action, line.server_id, line.actor_id) == ("ROLE_CREATE", str(server_id), str(OWNER.user_id))
    assert "name" in line.fields and "kept" not in str(line.__dict__.values())
