"""Live delivery: N subscribers on one channel (graphql-transport-ws through the router), one paced sender.

Two receivers with the same behaviour: `NodeReceiver` runs bench/listeners.mjs (graphql-ws from
router/node_modules, one Node process for all subscribers); `PythonReceiver` runs every socket in this
asyncio process. Send and receive times are wall-clock milliseconds on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from beep.router import router_node
from bench.load import Gql, GraphQLFailure, latency_summary
from tests.integration.flows import SEND_MESSAGE

ROOT = Path(__file__).resolve().parent.parent
LISTENERS = Path(__file__).with_name("listeners.mjs")


def wall_ms() -> float:
    return time.time_ns() / 1e6


@dataclass
class Subscriber:
    url: str  # the router's http(s) GraphQL URL
    token: str
    channel_id: str | None = None  # its own channel (bench/mixed.py); else the receiver's


@dataclass
class SubscriberLog:
    url: str
    received: list[tuple[int, float]] = field(default_factory=list)  # (sequence, wall ms)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    completed: bool = False


class Receiver(Protocol):
    name: str
    pid: int | None

    async def start(self, drain_s: float) -> None: ...
    async def wait_primed(self, wait_s: float) -> bool: ...
    async def finish(self, sent: int, drain_s: float) -> list[SubscriberLog]: ...
    async def close(self) -> None: ...


def _append(path: Path) -> BinaryIO:
    return path.open("ab")


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)


class PythonReceiver:
    """All sockets in this process: one reader task each, frames parsed with json.loads."""

    name = "python-websockets"
    pid: int | None = None  # runs inside the benchmark process

    def __init__(self, subscribers: list[Subscriber], query: str, channel_id: str, prefix: str) -> None:
        self.subscribers = subscribers
        self.query = query
        self.channel_id = channel_id
        self.prefix = prefix
        self.logs = [SubscriberLog(s.url) for s in subscribers]
        self.seen: list[set[int]] = [set() for _ in subscribers]
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.primed = asyncio.Event()
        self.all_received = asyncio.Event()
        self.first_seen = 0
        self.expected: int | None = None

    async def _open(self, sub: Subscriber) -> ClientConnection:
        ws = await connect(
            _ws_url(sub.url), subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
        )
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {sub.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        payload = {"query": self.query, "variables": {"channelId": self.channel_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        return ws

    async def start(self, drain_s: float) -> None:
        self.sockets = list(await asyncio.gather(*(self._open(s) for s in self.subscribers)))
        self.readers = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(self.sockets)]

    def _check_done(self) -> None:
        if self.expected is not None and all(len(s) >= self.expected for s in self.seen):
            self.all_received.set()

    async def _read(self, index: int, ws: ClientConnection) -> None:
        log, seen = self.logs[index], self.seen[index]
        first = True
        try:
            async for raw in ws:
                at = wall_ms()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                    continue
                if kind == "complete":
                    log.completed = True
                    continue
                if kind == "error" or (kind == "next" and message["payload"].get("errors")):
                    log.errors.append(json.dumps(message.get("payload"))[:300])
                if kind != "next":
                    continue
                event = (message["payload"].get("data") or {}).get("messageEvents") or {}
                content = (event.get("message") or {}).get("content")
                if not isinstance(content, str):
                    continue
                if first:
                    first = False
                    self.first_seen += 1
                    if self.first_seen == len(self.subscribers):
                        self.primed.set()
                if not content.startswith(self.prefix):
                    continue
                seq = int(content[len(self.prefix) :])
                if seq in seen:
                    log.duplicates += 1
                    continue
                seen.add(seq)
                log.received.append((seq, at))
                self._check_done()
        except ConnectionClosed as exc:
            log.errors.append(f"connection closed: {exc}"[:300])

    async def wait_primed(self, wait_s: float) -> bool:
        try:
            await asyncio.wait_for(self.primed.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def finish(self, sent: int, drain_s: float) -> list[SubscriberLog]:
        self.expected = sent
        self._check_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_received.wait(), drain_s)
        return self.logs

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


class NodeReceiver:
    """bench/listeners.mjs in one Node process (graphql-ws + ws, already in router/node_modules)."""

    name = "node-graphql-ws"

    def __init__(
        self, subscribers: list[Subscriber], query: str, channel_id: str, prefix: str, stderr_file: Path
    ) -> None:
        self.config = {
            "routerDir": str(ROOT / "router"),
            "query": query,
            "channelId": channel_id,
            "prefix": prefix,
            "drainMs": 0,
            "batch": 25,  # sockets opened at a time (listeners.mjs)
            "subscribers": [
                {"url": _ws_url(s.url), "token": s.token}
                | ({"channelId": s.channel_id} if s.channel_id else {})
                for s in subscribers
            ],
        }
        self.urls = [s.url for s in subscribers]
        self.stderr_file = stderr_file
        self.process: asyncio.subprocess.Process | None = None
        self.pid: int | None = None

    @staticmethod
    def available() -> bool:
        modules = ROOT / "router" / "node_modules"
        return (modules / "graphql-ws" / "package.json").exists() and (
            modules / "ws" / "package.json"
        ).exists()

    async def _line(self, wait_s: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), wait_s)
        if not raw:
            raise RuntimeError(f"listeners.mjs exited; see {self.stderr_file}")
        return raw.decode().rstrip("\n")

    async def start(self, drain_s: float) -> None:
        self.config["drainMs"] = int(drain_s * 1000)
        stderr = _append(self.stderr_file)
        try:
            config = self.stderr_file.with_suffix(".config.json")
            config.write_text(json.dumps(self.config))
            self.process = await asyncio.create_subprocess_exec(
                router_node(),
                str(LISTENERS),
                str(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=64 * 1024 * 1024,
            )
        finally:
            stderr.close()
        self.pid = self.process.pid
        line = await self._line(60 + len(self.urls) / 5)  # 500 sockets on a loaded machine: 160 s
        if line != "ready":
            raise RuntimeError(f"listeners.mjs: expected 'ready', got {line[:200]!r}")

    async def wait_primed(self, wait_s: float) -> bool:
        try:
            return await self._line(wait_s) == "primed"
        except TimeoutError:
            return False

    async def finish(
        self, sent: int, drain_s: float, per_channel: dict[str, int] | None = None
    ) -> list[SubscriberLog]:
        """The result, once every socket has `sent` messages (or its channel's count in `per_channel`) or
        after `drain_s`."""
        assert self.process is not None and self.process.stdin is not None
        if per_channel is None:
            command = f"end {sent} {int(drain_s * 1000)}"
        else:
            command = f"endc {int(drain_s * 1000)} {json.dumps(per_channel, separators=(',', ':'))}"
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()
        while True:
            line = await self._line(drain_s + 30)
            if line.startswith("result "):
                break
        return [
            SubscriberLog(
                self.urls[index],
                [(int(seq), float(at)) for seq, at in entry["received"]],
                entry["duplicates"],
                entry["errors"],
                entry["completed"],
            )
            for index, entry in enumerate(json.loads(line[len("result ") :]))
        ]

    async def step(self, prefix: str) -> None:
        """Measure messages whose content starts with `prefix` + " " from now on (sockets stay open)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"step {prefix}\n".encode())
        await self.process.stdin.drain()
        while (line := await self._line(30)) != "stepped":
            if line.startswith("result "):
                continue  # a late result of the previous step
            raise RuntimeError(f"listeners.mjs: expected 'stepped', got {line[:200]!r}")

    async def close(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass
class LiveSettings:
    messages: int
    rate_per_s: float
    cap_s: float
    drain_s: float


async def send_paced(
    gql: Gql, token: str, channel_id: str, prefix: str, settings: LiveSettings
) -> tuple[dict[int, float], list[float], list[str], float, bool]:
    """Sends `messages` at a fixed offered rate (sequentially; late sends go out at once)."""
    sent_at: dict[int, float] = {}
    send_ms: list[float] = []
    errors: list[str] = []
    capped = False
    start = time.monotonic()
    for seq in range(settings.messages):
        delay = start + seq / settings.rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() - start > settings.cap_s:
            capped = True
            break
        at, began = wall_ms(), time.perf_counter()
        try:
            data = await gql.data(
                SEND_MESSAGE, {"input": {"channelId": channel_id, "content": f"{prefix}{seq}"}}, token
            )
            assert data["sendMessage"]["__typename"] == "Message", data
        except (GraphQLFailure, AssertionError, OSError) as exc:
            errors.append(str(exc)[:300])
            continue
        send_ms.append((time.perf_counter() - began) * 1000)
        sent_at[seq] = at
    return sent_at, send_ms, errors, time.monotonic() - start, capped


def analyse(sent_at: dict[int, float], logs: list[SubscriberLog]) -> dict[str, Any]:
    latencies: list[float] = []
    by_url: dict[str, list[float]] = {}
    last_arrival: dict[int, float] = {}
    lost = 0
    lost_by_subscriber: list[int] = []
    received = [dict(log.received) for log in logs]
    for log, got in zip(logs, received, strict=True):
        missing = 0
        for seq, sent in sent_at.items():
            at = got.get(seq)
            if at is None:
                missing += 1
                continue
            latency = at - sent
            latencies.append(latency)
            by_url.setdefault(log.url, []).append(latency)
            last_arrival[seq] = max(last_arrival.get(seq, 0.0), latency)
        lost += missing
        lost_by_subscriber.append(missing)
    complete = [v for seq, v in last_arrival.items() if all(seq in got for got in received)]
    arrivals = [at for log in logs for seq, at in log.received if seq in sent_at]
    window_s = (max(arrivals) - min(sent_at.values())) / 1000 if arrivals and sent_at else 0.0
    result: dict[str, Any] = {
        "expected_deliveries": len(sent_at) * len(logs),
        "delivered": len(latencies),
        "lost": lost,  # not received by the end of the drain window after the last send
        "lost_by_subscriber": lost_by_subscriber,
        "duplicates": sum(log.duplicates for log in logs),
        "subscription_errors": [e for log in logs for e in log.errors][:5],
        "subscriptions_ended_early": sum(log.completed for log in logs),
        "deliveries_per_s": round(len(latencies) / window_s, 1) if window_s else 0.0,
        "send_to_receive": latency_summary(latencies),
        "send_to_last_subscriber": latency_summary(complete),
    }
    if len(by_url) > 1:
        result["send_to_receive_by_router"] = {url: latency_summary(v) for url, v in by_url.items()}
    return result
