"""N+1 guard for notifications: a page of them with their actor, server, channel and message references
costs the same number of SQL statements for 3 as for 30. The app (with its in-process worker, which makes
the notifications) runs in this process so every statement can be counted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine

from beep.registry import all_definitions
from beep.worker import running_worker
from db.engines import Database
from db.migrate import upgrade
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.app import create_app
from tests.harness.ports import free_port
from tests.integration.message_flows import SECRET, post, sign_up

pytestmark = pytest.mark.embedded

PAGE = """query($n: Int) { notifications(first: $n) {
  edges { node { id kind level read actor { username } server { id } channel { id } message { id } } } } }"""


class RequestStatements:
    """SQL statements of requests; the worker's own polling of the outboxes is not request work."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "tenant_moves" not in statement and "outbox" not in statement:
            self.statements.append(statement)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("notification-counts")
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        port=port,
        issuer_url=f"http://127.0.0.1:{port}/users",
        message_send_limit=10_000,
        internal_secret=SECRET,  # what `post` signs with
    )
    database = Database(settings.resolved_directory_url, settings.shard_map)

    async def migrate() -> None:
        await upgrade(database)
        await database.dispose()

    asyncio.run(migrate())
    app = create_app(all_definitions(), settings, mounted=True, background=running_worker)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the app did not start"
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_page_of_notifications_is_constant_in_its_size(base_url: str) -> None:
    owner, _ = sign_up(base_url, "noisy")
    reader, _ = sign_up(base_url, "reader")
    create_server = "mutation($i: CreateServerInput!) { createServer(input: $i) { ... on Server { id } } }"
    server = post(base_url, "servers", create_server, {"i": {"name": "Loud", "visibility": "PUBLIC"}}, owner)
    server_id = server["createServer"]["id"]
    post(
        base_url,
        "servers",
        "mutation($s: ID!) { joinServer(serverId: $s) { __typename } }",
        {"s": server_id},
        reader,
    )
    create_channel = (
        "mutation($i: CreateChannelInput!) { createChannel(input: $i) { ... on Channel { id } } }"
    )
    channels = [
        post(base_url, "channels", create_channel, {"i": {"serverId": server_id, "name": f"c{n}"}}, owner)[
            "createChannel"
        ]["id"]
        for n in range(3)
    ]
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { ... on Message { id } } }"
    for i in range(30):
        post(
            base_url,
            "messages",
            send,
            {"i": {"channelId": channels[i % 3], "content": f"@reader {i}"}},
            owner,
        )
    deadline = time.monotonic() + 30
    while len(post(base_url, "users", PAGE, {"n": 100}, reader)["notifications"]["edges"]) < 30:
        assert time.monotonic() < deadline, "the worker did not make the notifications"
        time.sleep(0.2)

    counts = []
    for size in (3, 30):
        counter = RequestStatements()
        event.listen(Engine, "before_cursor_execute", counter)
        try:
            page = post(base_url, "users", PAGE, {"n": size}, reader)["notifications"]["edges"]
        finally:
            event.remove(Engine, "before_cursor_execute", counter)
        assert len(page) == size
        assert all(e["node"]["message"] and e["node"]["channel"] and e["node"]["server"] for e in page)
        assert {e["node"]["actor"]["username"] for e in page} == {"noisy"}
        counts.append(len(counter.statements))
    # the page; actors (1); the references' access: servers with roles (2), channels (4), messages (1)
    assert counts[0] == counts[1] <= 9, counts
