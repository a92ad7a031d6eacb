"""`beep dev` talks to a person: its console is short readable lines, not JSON (which stays the default of
`beep serve`, the full mode and the chart), and its router's log reads the same way."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.dev import start_dev
from tests.harness.ports import free_port
from tests.integration.flows import sign_up

pytestmark = pytest.mark.embedded

NOTIFICATIONS = "subscription { notifications { __typename } }"


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


async def test_the_console_is_one_readable_line_per_event() -> None:
    router_port = free_port()
    run = start_dev(["--port", str(router_port)], {"BEEP_PORT": str(free_port())})
    try:
        # Given beep dev used as a client would: a request, then a live socket
        await asyncio.to_thread(run.wait_ready)
        client = GraphQLClient(f"http://127.0.0.1:{router_port}/graphql")
        account = await sign_up(client, "reader")
        async with client.with_token(account.token).subscriptions() as connection:
            operation = await connection.subscribe(NOTIFICATIONS)
            await operation.expect_nothing(within=1.0)
        await asyncio.sleep(0.5)

        # Then nothing on the console is a JSON line, and events read as "HH:MM:SS where: what  fields"
        lines = [line for line in run.console.splitlines() if line.strip()]
        assert not [line for line in lines if is_json(line)], run.console
        assert not [line for line in lines if " httpx: " in line or "connection open" in line], run.console
        assert any(
            re.fullmatch(r"\d\d:\d\d:\d\d app: runtime started  mode=embedded shards=64", x) for x in lines
        )
        # and the router's log (shown when it dies) is readable lines too, without colour codes
        router_log = (run.data_dir / "router.log").read_text()
        assert "[beep-router] configuration" in router_log
        assert not [line for line in router_log.splitlines() if is_json(line)]
        assert "\x1b[" not in router_log
    finally:
        await asyncio.to_thread(run.stop)
