"""Placement spike (issue 14): the fan-out tier's hot path as a Python service beside the gateway.

Not product code. `python -m bench.placement` starts one of these per router and measures it against the
gateway plugin (router/fanout.ts) with the same load; bench/README.md, "Placement spike", has the numbers.

What it does, as the plugin does: accepts graphql-transport-ws sockets (the client's JWT verified with the
subgraphs' own TokenVerifier), asks the owner subgraph once per batch of subscribers whether they may
receive the stream (`/internal/live-access`, signed), shares one upstream subscription per operation key
(printed document, operation name, variables) to the messages subgraph (the caller credential on the
upgrade, a fan-out credential for the first subscriber in connection_init: kernel/web/internal.py), renders
each event once and writes one frame per socket with that socket's subscription id, through a bounded
per-socket queue (a socket BUFFER frames behind is closed).

What it leaves out (bench/README.md estimates each): validation against the supergraph and any field the
owner subgraph cannot resolve alone (it sends the query to that subgraph as is: `flows.py`'s subscription
works because messages @provides `author.username` and `channel.name`), the viewer class (every stream is
"shared"), `after` (resume), access re-checks (the access-change feed and the periodic one), reopening a
failed upstream, presence for the sockets, HTTP (queries and mutations stay on the gateway's URL), tracing
and metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from graphql import (
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_ast,
    value_from_ast_untyped,
)
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from subgraphs.kernel.auth import (
    InvalidToken,
    JwksCache,
    TokenVerifier,
    bearer_token,
    connection_authorization,
)
from subgraphs.kernel.web import internal

log = logging.getLogger("beep.fanout_spike")
PROTOCOL = Subprotocol("graphql-transport-ws")
BUFFER = 1000  # frames queued per socket before it is cut off (the plugin's BEEP_FANOUT_BUFFER default)
CREDENTIAL_TTL_SECONDS = 24 * 3600


_background: set[asyncio.Task[Any]] = set()


def background(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget, keeping the reference asyncio needs until the task is done."""
    task = asyncio.create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def errors_frame(sub_id: str, code: str, message: str) -> str:
    payload = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return compact({"id": sub_id, "type": "next", "payload": payload})


class Client:
    """One client socket: its subscriptions and a bounded queue drained by one writer task, so a slow
    socket never holds up a stream's other sockets."""

    def __init__(self, ws: ServerConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.subscriptions: dict[str, Stream] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue(BUFFER)
        self.writer = asyncio.create_task(self._write())
        self.closed = False

    def offer(self, frame: str) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("slow consumer cut off (user %s)", self.user_id)
            self.closed = True
            self.writer.cancel()
            background(self.ws.close(4499, "slow consumer: resubscribe with your last cursor"))

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(await self.queue.get())


@dataclass
class Stream:
    """One upstream subscription, shared by every (socket, subscription id) with the same key."""

    tier: Tier
    key: str
    request: dict[str, Any]  # the graphql-transport-ws subscribe payload sent upstream
    leader: str  # the user whose fan-out credential opens it
    listeners: dict[tuple[Client, str], str] = field(default_factory=dict)  # -> the frame's head
    task: asyncio.Task[None] | None = None

    def add(self, client: Client, sub_id: str) -> None:
        self.listeners[(client, sub_id)] = '{"id":' + compact(sub_id) + ',"type":"next","payload":'
        client.subscriptions[sub_id] = self

    def remove(self, client: Client, sub_id: str) -> None:
        self.listeners.pop((client, sub_id), None)
        if not self.listeners:
            self.forget()
            if self.task is not None:
                self.task.cancel()

    def forget(self) -> None:
        if self.tier.streams.get(self.key) is self:
            del self.tier.streams[self.key]

    async def run(self) -> None:
        headers = {internal.CALLER_HEADER: internal.caller_credential(self.tier.secret)}
        ending = "the live stream ended"
        try:
            async with connect(
                self.tier.upstream, subprotocols=[PROTOCOL], additional_headers=headers, max_size=None
            ) as upstream:
                init = {"authorization": self.tier.fanout_credential(self.leader)}
                await upstream.send(compact({"type": "connection_init", "payload": init}))
                ack = json.loads(await asyncio.wait_for(upstream.recv(), 10))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"upstream refused the fan-out credential: {ack}")
                await upstream.send(compact({"id": "1", "type": "subscribe", "payload": self.request}))
                async for raw in upstream:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "next":
                        tail = compact(message["payload"]) + "}"  # rendered once for every socket
                        for (client, _sub_id), head in self.listeners.items():
                            client.offer(head + tail)
                    elif kind == "ping":
                        await upstream.send('{"type":"pong"}')
                    elif kind in ("error", "complete"):
                        ending = f"upstream {kind}: {message.get('payload')}"
                        break
        except asyncio.CancelledError:
            return  # no listener left
        except (OSError, ConnectionClosed, RuntimeError, TimeoutError) as exc:
            ending = f"upstream failed: {exc}"
        finally:
            self.forget()
        log.warning("stream ended: %s", ending)
        for client, sub_id in list(self.listeners):  # the spike does not reopen: the sockets are told
            client.offer(errors_frame(sub_id, "INTERNAL_SERVER_ERROR", "The live stream ended."))
            client.offer(compact({"id": sub_id, "type": "complete"}))
            client.subscriptions.pop(sub_id, None)


class AccessChecks:
    """Subscribers of the same field and arguments asking in the same turn of the event loop share one
    `/internal/live-access` call (the plugin's Coalescer does the same per batch)."""

    def __init__(self, http: httpx.AsyncClient, url: str, secret: str) -> None:
        self.http = http
        self.url = url
        self.secret = secret
        self.pending: dict[str, tuple[set[str], asyncio.Future[dict[str, Any]]]] = {}

    async def denial(self, field_name: str, arguments: dict[str, Any], user: str) -> dict[str, str] | None:
        key = compact([field_name, sorted(arguments.items())])
        entry = self.pending.get(key)
        if entry is None:
            entry = (set(), asyncio.get_running_loop().create_future())
            self.pending[key] = entry
            asyncio.get_running_loop().call_soon(lambda: background(self._ask(key, field_name, arguments)))
        entry[0].add(user)
        answer = await asyncio.shield(entry[1])
        if not answer.get("shared"):
            return {
                "code": "BAD_USER_INPUT",
                "message": "The spike shares only fields with a live-access check.",
            }
        denied: dict[str, dict[str, str]] = answer.get("denied") or {}
        if user in denied:
            return denied[user]
        return (
            None
            if user in set(answer.get("allowed") or [])
            else {"code": "NOT_FOUND", "message": "Not found."}
        )

    async def _ask(self, key: str, field_name: str, arguments: dict[str, Any]) -> None:
        users, future = self.pending.pop(key)
        body = compact(
            {"field": field_name, "arguments": arguments, "users": sorted(users), "renewal": False}
        )
        try:
            response = await self.http.post(
                self.url,
                content=body.encode(),
                headers={
                    "content-type": "application/json",
                    internal.SIGNATURE_HEADER: internal.sign(self.secret, body.encode()),
                },
            )
            response.raise_for_status()
            future.set_result(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            future.set_exception(exc)


class Tier:
    def __init__(self, upstream: str, secret: str, verifier: TokenVerifier, checks: AccessChecks) -> None:
        self.upstream = upstream  # ws://…/graphql of the subgraph that owns the subscription fields
        self.secret = secret
        self.verifier = verifier
        self.checks = checks
        self.streams: dict[str, Stream] = {}

    def fanout_credential(self, user_id: str) -> str:
        return internal.fanout_credential(
            self.secret, int(user_id), int(time.time()) + CREDENTIAL_TTL_SECONDS
        )

    async def handle(self, ws: ServerConnection) -> None:
        if ws.subprotocol != PROTOCOL:
            await ws.close(4406, "Subprotocol not acceptable")
            return
        try:
            init = json.loads(await asyncio.wait_for(ws.recv(), 10))
            raw = connection_authorization(init.get("payload") or {})
            token = bearer_token(raw if isinstance(raw, str) else None)
            if init.get("type") != "connection_init" or token is None:
                raise InvalidToken("no token")
            principal = await self.verifier.verify(token)
        except TimeoutError:
            await ws.close(4408, "Connection initialisation timeout")
            return
        except (InvalidToken, ValueError, AttributeError, ConnectionClosed):
            await ws.close(4403, "Forbidden")
            return
        await ws.send('{"type":"connection_ack"}')
        client = Client(ws, str(principal.user_id))
        try:
            async for raw_message in ws:
                message = json.loads(raw_message)
                kind = message.get("type")
                if kind == "subscribe":
                    background(self.subscribe(client, str(message["id"]), message["payload"]))
                elif kind == "complete":
                    stream = client.subscriptions.pop(str(message.get("id")), None)
                    if stream is not None:
                        stream.remove(client, str(message.get("id")))
                elif kind == "ping":
                    client.offer('{"type":"pong"}')
        except (ConnectionClosed, ValueError):
            pass
        finally:
            client.closed = True
            client.writer.cancel()
            for sub_id, stream in list(client.subscriptions.items()):
                stream.remove(client, sub_id)

    async def subscribe(self, client: Client, sub_id: str, payload: dict[str, Any]) -> None:
        variables: dict[str, Any] = payload.get("variables") or {}
        operation_name = payload.get("operationName")
        try:
            document = parse(payload["query"])
            ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            op = next(o for o in ops if operation_name is None or (o.name and o.name.value == operation_name))
            (root,) = op.selection_set.selections
            assert op.operation == OperationType.SUBSCRIPTION and isinstance(root, FieldNode)
            arguments = {
                a.name.value: value_from_ast_untyped(a.value, variables) for a in root.arguments or ()
            }
            denial = await self.checks.denial(root.name.value, arguments, client.user_id)
        except (KeyError, StopIteration, ValueError, AssertionError, httpx.HTTPError) as exc:
            denial = {"code": "BAD_USER_INPUT", "message": f"Not a subscription the spike serves: {exc}"}
        if denial is not None:
            client.offer(errors_frame(sub_id, denial["code"], denial["message"]))
            client.offer(compact({"id": sub_id, "type": "complete"}))
            return
        key = compact([print_ast(document), operation_name, sorted(variables.items()), "shared"])
        stream = self.streams.get(key)
        if stream is None:
            request = {"query": payload["query"], "variables": variables, "operationName": operation_name}
            stream = self.streams[key] = Stream(self, key, request, client.user_id)
            stream.task = asyncio.create_task(stream.run())
        stream.add(client, sub_id)


async def main(args: argparse.Namespace) -> None:
    secret = args.secret or sys.stdin.readline().strip()  # not in argv: `ps` would show it
    verifier = TokenVerifier(JwksCache(args.jwks), args.issuer, args.audience)
    async with httpx.AsyncClient(timeout=10.0) as http:
        tier = Tier(args.upstream, secret, verifier, AccessChecks(http, args.live_access, secret))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        # No permessage-deflate, as the gateway's `ws` server (off by default there).
        async with serve(tier.handle, "127.0.0.1", args.port, subprotocols=[PROTOCOL], compression=None):
            print("ready", flush=True)
            await stop.wait()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_spike", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="ws://host:port/graphql of the messages subgraph")
    parser.add_argument("--live-access", required=True, help="http://host:port/internal/live-access")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--jwks", required=True)
    parser.add_argument("--audience", default="beep")
    parser.add_argument("--secret", default="", help="BEEP_INTERNAL_SECRET (default: first line of stdin)")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.no_uvloop:
        asyncio.run(main(args))
    else:
        import uvloop  # the subgraphs' loop too (uvicorn picks it when installed)

        uvloop.run(main(args))


if __name__ == "__main__":
    cli()
