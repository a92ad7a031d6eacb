"""Backup and restore drill: seed, back up (once under a send load, to S3), destroy, restore, compare.

A full stack on PostgreSQL (and S3 for media and backups: moto's server, the harness's S3 stand-in).
Backups are taken with `beep backup create` as an operator or the chart's CronJob would; the databases
are then dropped and created empty, `beep backup restore` fills them, and every row of every table must
match what was there, the API must answer as before (history, sign-in with the old password, a new
send), and a damaged or wrongly keyed backup must be refused before anything is restored.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import BEEP, Stack, start_full
from tests.integration.flows import SIGN_IN, create_server, default_channel, send, sign_up

pytestmark = pytest.mark.full

HISTORY = """query($c: ID!) { messages(channelId: $c, first: 100) { edges { node { id content
  author { username } } } } }"""
TABLES = """SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
  WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"""
ROWS_MD5 = "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"


def backup(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*BEEP, "backup", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def checksums(urls: list[str]) -> dict[str, tuple[int, str]]:
    """Every table's row count and an MD5 of its rows in a stable order, in every database."""
    sums: dict[str, tuple[int, str]] = {}
    for index, url in enumerate(urls):
        connection = await asyncpg.connect(libpq(url))
        try:
            for (table,) in await connection.fetch(TABLES):
                row = await connection.fetchrow(f"SELECT count(*), {ROWS_MD5} FROM {table} t")
                sums[f"{index}:{table}"] = (row[0], row[1])
        finally:
            await connection.close()
    return sums


async def recreate(urls: list[str]) -> None:
    """Destroy: each database dropped (connections cut) and created again, empty."""
    admin = await asyncpg.connect(libpq(urls[0]).rsplit("/", 1)[0] + "/postgres")
    try:
        for url in urls:
            name = url.rsplit("/", 1)[1]
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def history(client: GraphQLClient, channel_id: str) -> list[dict[str, Any]]:
    for _ in range(100):  # the processes reconnect to the restored databases: retry a typed UNAVAILABLE
        answer = await client.execute(HISTORY, {"c": channel_id})
        if not answer.errors and answer.data:
            return [edge["node"] for edge in answer.data["messages"]["edges"]]
        assert answer.codes == ["UNAVAILABLE"], answer
        await asyncio.sleep(0.2)
    raise AssertionError("history never came back")


@pytest.fixture
def stack() -> Any:
    running = start_full()
    try:
        yield running
    finally:
        running.stop()


async def test_backup_destroy_restore_drill(stack: Stack, tmp_path: Path) -> None:
    env = dict(stack.env)
    assert stack.s3 is not None
    urllib.request.urlopen(urllib.request.Request(f"{stack.s3.endpoint_url}/beep-backups", method="PUT"))
    key = tmp_path / "backup.key"
    assert subprocess.run([*BEEP, "backup", "keygen", str(key)], env=env).returncode == 0
    assert key.stat().st_mode & 0o077 == 0

    owner = await sign_up(GraphQLClient(stack.router_url), "backup")
    client = GraphQLClient(stack.router_url, owner.token)
    server = await create_server(client, "Backed up")
    channel = await default_channel(client, server["id"])
    for i in range(20):
        await send(client, channel["id"], f"before the backup {i}")

    # Under load, to S3, twice with --keep 1: the first is pruned; sends carry on through the fence.
    sent_during = 0

    async def keep_sending() -> None:
        nonlocal sent_during
        while True:
            await send(client, channel["id"], f"during the backup {sent_during}")
            sent_during += 1

    sender = asyncio.create_task(keep_sending())
    try:
        code, first = await asyncio.to_thread(
            backup, env, "create", "--to", "s3://beep-backups/nightly", "--keep", "1", "--key-file", str(key)
        )
        assert code == 0, first
        code, second = await asyncio.to_thread(
            backup, env, "create", "--to", "s3://beep-backups/nightly", "--keep", "1", "--key-file", str(key)
        )
        assert code == 0, second
    finally:
        sender.cancel()
    assert sent_during > 0
    assert second["pruned"] == [first["location"]]
    assert second["fence_ms"] < 5000 and len(second["databases"]) == 3
    print(
        f"\nbackup under load: writers paused {second['fence_ms']} ms, {sent_during} messages sent meanwhile"
    )

    # Quiet: Beep's processes stop, so every row can be compared after the restore.
    before = await history(client, channel["id"])
    names = list(stack.subgraph_ports)
    for name in [*names, "worker"]:
        stack.kill(name)
    sums = await checksums(stack.database_urls)
    assert sums and sum(count for count, _ in sums.values()) > 0
    code, local = backup(env, "create", "--to", str(tmp_path / "backups"), "--key-file", str(key))
    assert code == 0, local
    code, verified = backup(env, "verify", local["location"], "--key-file", str(key))
    assert code == 0 and verified["ok"], verified

    # Damaged and wrongly keyed backups are refused, before anything is restored.
    blob = bytearray(Path(local["location"]).read_bytes())
    blob[len(blob) // 2] ^= 0x40
    tampered = tmp_path / "tampered.bkp"
    tampered.write_bytes(bytes(blob))
    other_key = tmp_path / "other.key"
    subprocess.run([*BEEP, "backup", "keygen", str(other_key)], env=env, check=True)
    code, answer = backup(env, "verify", str(tampered), "--key-file", str(key))
    assert (code, answer["code"]) == (1, "TAMPERED"), answer
    code, answer = backup(env, "restore", local["location"], "--key-file", str(other_key))
    assert (code, answer["code"]) == (1, "WRONG_KEY"), answer
    code, answer = backup(env, "restore", local["location"], "--key-file", str(key))
    assert (code, answer["code"]) == (1, "TARGET_NOT_EMPTY"), answer  # the live databases are not touched

    await recreate(stack.database_urls)
    code, answer = backup(env, "restore", str(tampered), "--key-file", str(key))
    assert (code, answer["code"]) == (1, "TAMPERED"), answer
    assert not any(await checksums(stack.database_urls)), "a refused restore left tables behind"

    started = time.monotonic()
    code, restored = backup(env, "restore", local["location"], "--key-file", str(key))
    assert code == 0, restored
    assert len(restored["restored"]) == 3 and restored["media"]["missing"] == 0
    assert await checksums(stack.database_urls) == sums
    print(f"restore: {time.monotonic() - started:.1f} s, {len(sums)} tables, every row identical")

    for name in names:
        stack.restart_subgraph(name)
    stack.restart_worker()
    assert await history(client, channel["id"]) == before
    signed_in = await GraphQLClient(stack.router_url).data(
        SIGN_IN, {"input": {"email": owner.email, "password": owner.password}}
    )
    assert signed_in["signIn"]["__typename"] == "AuthPayload", signed_in
    await send(client, channel["id"], "after the restore")
    assert (await history(client, channel["id"]))[0]["content"] == "after the restore"

    # The backup taken under load restores too (into scratch databases: same layout, new names).
    admin = await asyncpg.connect(libpq(stack.database_urls[0]).rsplit("/", 1)[0] + "/postgres")
    try:
        scratch = []
        for url in stack.database_urls:
            name = url.rsplit("/", 1)[1] + "_scratch"
            await admin.execute(f'CREATE DATABASE "{name}"')
            scratch.append(url.rsplit("/", 1)[0] + "/" + name)
    finally:
        await admin.close()
    scratch_env = env | {
        "BEEP_DIRECTORY_URL": scratch[0],
        "BEEP_SHARD_DATABASES": f"0-31={scratch[1]};32-63={scratch[2]}",
    }
    code, answer = backup(scratch_env, "restore", second["location"], "--key-file", str(key))
    assert code == 0, answer
    rows = await checksums(scratch)
    messages = sum(count for name, (count, _) in rows.items() if name.endswith(".messages"))
    assert messages >= 20 + 1, rows  # everything sent before, and what was sent before the fence
