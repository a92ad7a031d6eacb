"""`beep backup` on the embedded storage: a running `beep dev`-style stack backed up online, restored into
a fresh data directory, and the copy holds what the API wrote (SQLite files, local media)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import BEEP, Stack
from tests.integration.flows import create_server, default_channel, send, sign_up, unique

pytestmark = pytest.mark.embedded


def run(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = subprocess.run([*BEEP, "backup", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


async def test_online_backup_restores_into_a_fresh_data_directory(
    embedded_stack: Stack, tmp_path: Path
) -> None:
    owner = await sign_up(GraphQLClient(embedded_stack.router_url), "sqlitebackup")
    client = GraphQLClient(embedded_stack.router_url, owner.token)
    server = await create_server(client, "Embedded")
    channel = await default_channel(client, server["id"])
    content = unique("kept in the backup ")
    await send(client, channel["id"], content)

    env = dict(embedded_stack.env) | {"BEEP_BACKUP_KEY": "ab" * 32}
    code, made = run(env, "create", "--to", str(tmp_path / "backups"), "--keep", "2")
    assert code == 0, made
    assert made["engine"] == "sqlite" and len(made["databases"]) == 1 + 64  # the directory and 64 shard files

    fresh = dict(env) | {"BEEP_DATA_DIR": str(tmp_path / "restored")}
    code, restored = run(fresh, "restore", made["location"])
    assert code == 0, restored
    code, again = run(fresh, "restore", made["location"])
    assert (code, again["code"]) == (1, "TARGET_NOT_EMPTY")

    data = tmp_path / "restored"
    with sqlite3.connect(data / "directory.db") as directory:
        emails = {row[0] for row in directory.execute("SELECT email FROM users")}
    assert owner.email in emails
    found = []
    for shard in sorted((data / "shards").glob("shard_*.db")):
        with sqlite3.connect(shard) as db:
            found += [
                row[0] for row in db.execute("SELECT content FROM messages WHERE content = ?", (content,))
            ]
    assert found == [content]
