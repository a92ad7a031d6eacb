"""A GraphQL client as the frontend uses it: HTTP POST, and WebSocket with graphql-transport-ws."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets


@dataclass
class Result:
    status: int
    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> list[str | None]:
        return [(e.get("extensions") or {}).get("code") for e in self.errors]


class GraphQLClient:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def with_token(self, token: str | None) -> GraphQLClient:
        return GraphQLClient(self.url, token)

    async def execute(self, query: str, variables: dict[str, Any] | None = None, **headers: str) -> Result:
        sent = {"content-type": "application/json", **headers}
        if self.token:
            sent["authorization"] = f"Bearer {self.token}"
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                self.url, json={"query": query, "variables": variables or {}}, headers=sent
            )
        try:
            body = response.json()
        except ValueError:
            body = {"errors": [{"message": response.text}]}
        return Result(response.status_code, body.get("data"), body.get("errors") or [])

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.execute(query, variables)
        assert not result.errors, result.errors
        assert result.data is not None
        return result.data

    def subscriptions(self, connection_params: dict[str, Any] | None = None) -> SubscriptionConnection:
        params = connection_params
        if params is None and self.token:
            params = {"authorization": f"Bearer {self.token}"}
        return SubscriptionConnection(self.url.replace("http://", "ws://", 1), params or {})


class SubscriptionConnection:
    """One graphql-transport-ws connection; several operations may run on it."""

    def __init__(self, url: str, params: dict[str, Any]) -> None:
        self.url = url
        self.params = params
        self._ids = itertools.count(1)
        self._ws: Any = None
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[tuple[int | None, str]] | None = None

    async def __aenter__(self) -> SubscriptionConnection:
        self._ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"])
        self.closed = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps({"type": "connection_init", "payload": self.params}))
        ack = json.loads(await asyncio.wait_for(self._ws.recv(), 15))
        assert ack["type"] == "connection_ack", ack
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        await self._ws.close()

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self._ws.send(json.dumps({"type": "pong"}))
                    continue
                queue = self._queues.get(message.get("id", ""))
                if queue is not None:
                    await queue.put(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            assert self.closed is not None
            if not self.closed.done():
                self.closed.set_result((self._ws.close_code, self._ws.close_reason))

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, *, live_signal: bool = False
    ) -> Operation:
        """`live_signal`: ask for the router's live signal (docs/live-signal.md), which `Operation.live`
        awaits."""
        op_id = str(next(self._ids))
        self._queues[op_id] = asyncio.Queue()
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if live_signal:
            payload["extensions"] = {"liveSignal": True}
        await self._ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return Operation(self, op_id, self._queues[op_id])


def is_live_signal(message: dict[str, Any]) -> bool:
    """The router's live signal: a result with no data, `extensions.live` (docs/live-signal.md)."""
    payload = message.get("payload")
    return (
        message.get("type") == "next"
        and isinstance(payload, dict)
        and "data" not in payload
        and (payload.get("extensions") or {}).get("live") is True
    )


@dataclass
class Operation:
    connection: SubscriptionConnection
    id: str
    queue: asyncio.Queue[dict[str, Any]]
    held: list[dict[str, Any]] = field(default_factory=list)  # read while awaiting the live signal

    async def next(self, timeout: float = 15.0) -> dict[str, Any]:
        """The next message for this operation: {'type': 'next'|'error'|'complete', 'payload': ...}."""
        if self.held:
            return self.held.pop(0)
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def live(self, timeout: float = 15.0) -> bool:
        """Awaits the live signal (subscribed with `live_signal`): True once it came, False if the
        operation ended first. Whatever came before it (an error, a snapshot) is left for `next`."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                if is_live_signal(message):
                    return True
                self.held.append(message)
                if message["type"] in ("error", "complete"):
                    return False

    async def expect_nothing(self, within: float) -> None:
        if self.held:
            raise AssertionError(f"expected no message, got {self.held[0]}")
        try:
            message = await asyncio.wait_for(self.queue.get(), within)
        except TimeoutError:
            return
        raise AssertionError(f"expected no message, got {message}")

    async def stop(self) -> None:
        await self.connection._ws.send(json.dumps({"id": self.id, "type": "complete"}))
