"""The full stack's logs (every Beep process: subgraphs, worker, routers; docs/logging.md), read as an
operator's log shipper would: people's e-mail addresses, usernames and message text appear only as tokens
the stack's key reveals, while the access and audit streams say who did what, under one request id from
the router to the subgraphs."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any

import httpx

from subgraphs.kernel.logtokens import TOKEN_RE, LogTokenizer
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    SIGN_IN,
    Account,
    create_channel,
    create_server,
    send,
    sign_up,
)

CREATE_WEBHOOK = """mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { __typename
  ... on WebhookSecret { token webhook { id } } ... on UserError { code } } }"""
# What an e-mail address looks like in a log line (a token never does: it has no @).
EMAIL = re.compile(r"[A-Za-z0-9.+_-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+")


def log_lines(stack: Stack) -> dict[str, list[str]]:
    return {path.name: path.read_text(errors="replace").splitlines() for path in stack.workdir.glob("*.log")}


def entries(lines: list[str]) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


async def until_logged(stack: Stack, *needles: str, timeout: float = 15.0) -> str:
    """All log text once every needle is in it (access lines follow their response by a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = "\n".join("\n".join(lines) for lines in log_lines(stack).values())
        missing = [n for n in needles if n not in text]
        if not missing or asyncio.get_running_loop().time() > deadline:
            assert not missing, f"not in the logs: {missing}"
            return text
        await asyncio.sleep(0.2)


async def test_the_logs_hold_personal_data_only_as_tokens(full_stack: Stack) -> None:
    stack = full_stack
    tokens = LogTokenizer(stack.env["BEEP_LOG_TOKEN_KEY"])
    anonymous = GraphQLClient(stack.router_url)

    # Given two people who sign up, one who signs in, one whose sign-in fails
    alice: Account = await sign_up(anonymous, "logalice")
    bob: Account = await sign_up(anonymous, "logbob")
    signed_in = await anonymous.data(SIGN_IN, {"input": {"email": alice.email, "password": alice.password}})
    assert signed_in["signIn"]["__typename"] == "AuthPayload"
    failed = await anonymous.data(SIGN_IN, {"input": {"email": bob.email, "password": "not-" + bob.password}})
    assert failed["signIn"]["__typename"] != "AuthPayload"

    # and messages sent in a server, one naming an e-mail address, one through a webhook
    as_alice = anonymous.with_token(alice.token)
    server = await create_server(as_alice, "Log privacy")
    channel = await create_channel(as_alice, server["id"], "private-talk")
    texts = [f"my secret plan {secrets.token_hex(6)}", f"write to {alice.username}.home@elsewhere.test"]
    request_id = f"logtest-{secrets.token_hex(8)}"
    sent = await as_alice.execute(
        """mutation($i: SendMessageInput!) { sendMessage(input: $i) { __typename } }""",
        {"i": {"channelId": channel["id"], "content": texts[0]}},
        **{"x-request-id": request_id},
    )
    assert not sent.errors, sent.errors
    await send(as_alice, channel["id"], texts[1])
    hook = (await as_alice.data(CREATE_WEBHOOK, {"i": {"channelId": channel["id"], "name": "Logbot"}}))[
        "createWebhook"
    ]
    webhook_text = f"deploy finished for {secrets.token_hex(6)}"
    texts.append(webhook_text)
    async with httpx.AsyncClient(timeout=30) as http:
        posted = await http.post(
            f"{stack.router_url.removesuffix('/graphql')}/webhooks/{hook['webhook']['id']}/{hook['token']}",
            json={"content": webhook_text},
        )
    assert posted.status_code == 204, posted.text

    # When the logs are read, once the sign-up, failed sign-in, audit and access lines are all written
    text = await until_logged(stack, request_id, "WEBHOOK_CREATE", "SIGN_IN_FAIL")

    # Then none of what these people are or wrote is in clear text, in any process's log
    for secret in (alice.email, bob.email, alice.username, bob.username, *texts, bob.password):
        assert secret not in text, f"{secret!r} is in the logs in clear text"
    assert not EMAIL.findall(TOKEN_RE.sub("", text)), "an e-mail address is in the logs in clear text"
    # but as tokens the stack's key reveals (so the test cannot pass by logging nothing)
    seeded_tokens = [tokens.token(v) for v in (alice.email, alice.username, bob.email, bob.username)]
    assert not [t for t in seeded_tokens if t not in text], "the people's tokens are not in the logs"
    assert [tokens.reveal(t) for t in seeded_tokens] == [alice.email, alice.username, bob.email, bob.username]

    by_file = {name: entries(lines) for name, lines in log_lines(stack).items()}
    every = [entry for found in by_file.values() for entry in found]
    standard = {"level", "timestamp", "service", "container_id", "message", "trace_id", "span_id"}
    standard.add("request_id")
    # Every process writes the standard fields: the subgraphs, the worker and the routers
    for name in ("users.log", "messages.log", "worker.log", "router-a.log"):
        assert by_file[name], f"{name} has no JSON lines"
        assert all(standard <= set(entry) for entry in by_file[name]), name
    assert {e["service"] for e in by_file["router-a.log"]} == {"beep-router"}
    assert {e["service"] for e in by_file["worker.log"]} == {"beep-worker"}

    # The audit stream names the failed sign-in by tokens only
    audit = [e for e in every if e.get("stream") == "audit"]
    failure = next(e for e in audit if e.get("action") == "SIGN_IN_FAIL" and e["email"] == seeded_tokens[2])
    assert failure["level"] == "warning" and failure["ip"].startswith("pii_")
    assert any(e.get("action") == "WEBHOOK_CREATE" and e["service"] == "beep-webhooks" for e in audit)

    # One request id from the router's access line to the subgraph's: method, operation, status, duration
    access = [e for e in every if e.get("stream") == "access" and e.get("request_id") == request_id]
    services = {e["service"] for e in access}
    assert {"beep-router", "beep-messages"} <= services, access
    router_line = next(e for e in access if e["service"] == "beep-router")
    assert (router_line["method"], router_line["path"], router_line["status"]) == ("POST", "/graphql", 200)
    assert router_line["duration_ms"] >= 0 and router_line["client_ip"].startswith("pii_")
    for line in access:  # never the query text nor its variables
        assert "sendMessage" not in json.dumps(line) and "mutation" not in json.dumps(line)
