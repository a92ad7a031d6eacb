"""Idle subscriptions and herds: `python -m bench.idle [--mode full|embedded] [--sockets N --per-socket K]`.

Opens `sockets` graphql-transport-ws sockets through the routers (bench/idle_sockets.mjs, one Node
process), each holding `per_socket` `messageEvents` subscriptions (`flows.py`'s selection) spread over
`channels` channels of one server, all opened at once (a reconnecting herd after a router restart).
Reports how long the herd took, the memory each process holds per subscription (RSS before and after,
from /proc), whether presence says every user is connected, then closes every socket at once and
checks that presence says every user left and that no process logged an error (e.g. redis-py's
MaxConnectionsError). Writes bench/results/<date>-idle-<mode>[-<tag>].json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beep.router import router_node
from bench.delivery import Account, sign_up
from bench.load import Gql, pooled_client
from bench.procs import CpuMeter, rss_kib
from bench.run import RESULTS, bounded_gather, run_mode
from tests.harness.stack import Stack
from tests.integration.flows import CREATE_CHANNEL, CREATE_SERVER, JOIN_SERVER, MESSAGE_EVENTS

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class IdleSettings:
    quick: bool
    sockets: int
    per_socket: int
    users: int
    channels: int
    batch: int  # sockets opened at a time by the client (0: all at once)


def memory(stack: Stack) -> dict[str, int]:
    return {name: rss_kib(process.pid) for name, process in stack.processes}


async def seed(gql: Gql, settings: IdleSettings) -> tuple[Account, list[Account], list[str], list[str]]:
    owner = await sign_up(gql, "iowner")
    server = await gql.data(CREATE_SERVER, {"input": {"name": "Idle", "visibility": "PUBLIC"}}, owner.token)
    server_id = server["createServer"]["id"]
    channels = []
    for n in range(settings.channels):
        made = await gql.data(
            CREATE_CHANNEL, {"input": {"serverId": server_id, "name": f"c{n}"}}, owner.token
        )
        channels.append(made["createChannel"]["id"])
    users = await bounded_gather(4, [lambda: sign_up(gql, "idle") for _ in range(settings.users)])
    await bounded_gather(4, [lambda a=a: gql.data(JOIN_SERVER, {"id": server_id}, a.token) for a in users])
    ids = []
    for account in users:
        me = await gql.data("{ me { id } }", {}, account.token)
        ids.append(me["me"]["id"])
    return owner, users, channels, ids


async def connected_count(gql: Gql, owner: Account, ids: list[str]) -> int:
    """How many of these users presence says are connected (25 aliases a query: the router allows 30)."""
    count = 0
    for start in range(0, len(ids), 25):
        chunk = ids[start : start + 25]
        fields = " ".join(f'u{n}: user(id: "{i}") {{ connectionStatus }}' for n, i in enumerate(chunk))
        data = await gql.data(f"{{ {fields} }}", {}, owner.token)
        count += sum(1 for u in data.values() if u and u["connectionStatus"] == "CONNECTED")
    return count


async def idle_body(stack: Stack, settings: IdleSettings) -> dict[str, Any]:
    routers = [u for u in (stack.router_url, stack.second_router_url) if u]
    async with pooled_client(8) as http:
        gql = Gql(http, stack.router_url)
        began = time.monotonic()
        owner, users, channels, ids = await seed(gql, settings)
        print(
            f"  seeded {len(users)} users, {len(channels)} channels in {time.monotonic() - began:.1f}s",
            flush=True,
        )
        sockets = []
        for i in range(settings.sockets):
            first = (i * settings.per_socket) % len(channels)
            picked = [channels[(first + k) % len(channels)] for k in range(settings.per_socket)]
            url = routers[i % len(routers)].replace("http://", "ws://")
            sockets.append({"url": url, "token": users[i % len(users)].token, "channels": picked})
        config = stack.workdir / "idle-sockets.json"
        config.write_text(
            json.dumps(
                {
                    "routerDir": str(ROOT / "router"),
                    "query": MESSAGE_EVENTS,
                    "batch": settings.batch,
                    "sockets": sockets,
                }
            )
        )
        await asyncio.sleep(5)
        before = memory(stack)
        meter = CpuMeter()
        for name, process in stack.processes:
            meter.add(name, process.pid)
        start_cpu = meter.snapshot()
        client = await asyncio.create_subprocess_exec(
            router_node(),
            str(ROOT / "bench" / "idle_sockets.mjs"),
            str(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        assert client.stdout is not None and client.stdin is not None
        line = (await asyncio.wait_for(client.stdout.readline(), 600)).decode()
        opened = json.loads(line.split(" ", 1)[1])
        herd_cpu = CpuMeter.usage(start_cpu, meter.snapshot())
        print(f"  herd: {opened}", flush=True)
        await asyncio.sleep(10)  # subscriptions settle: access checks, presence
        after = memory(stack)
        client_rss = rss_kib(client.pid)
        online = await connected_count(gql, owner, ids)
        total = settings.sockets * settings.per_socket
        per_subscription = {
            name: round((after[name] - before.get(name, after[name])) * 1024 / total) for name in after
        }
        print(f"  bytes per subscription: {per_subscription}; online {online}/{len(ids)}", flush=True)
        close_started = meter.snapshot()
        closed_at = time.monotonic()
        client.stdin.write(b"close\n")
        await client.stdin.drain()
        closed = json.loads((await asyncio.wait_for(client.stdout.readline(), 600)).decode().split(" ", 1)[1])
        left_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await connected_count(gql, owner, ids) == 0:
                left_at = time.monotonic()
                break
            await asyncio.sleep(0.5)
        close_cpu = CpuMeter.usage(close_started, meter.snapshot())
        client.stdin.close()
        await client.wait()
        return {
            "subscriptions": total,
            "sockets": settings.sockets,
            "users": len(ids),
            "herd": opened,
            "herd_cpu": herd_cpu,
            "rss_kib_before": before,
            "rss_kib_after": after,
            "bytes_per_subscription": per_subscription,
            "client_rss_kib": client_rss,
            "connected_while_open": online,
            "close": closed,
            "all_disconnected_after_close_s": None if left_at is None else round(left_at - closed_at, 1),
            "close_cpu": close_cpu,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "full"], default="full")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--per-socket", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--batch", type=int, default=0, help="sockets opened at a time (0: all at once)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    settings = IdleSettings(False, args.sockets, args.per_socket, args.users, args.channels, args.batch)
    result = run_mode(args.mode, settings, idle_body)  # type: ignore[arg-type]
    result["scenario"] = "idle"
    print(
        json.dumps(
            {k: result[k] for k in ("herd", "bytes_per_subscription", "connected_while_open", "close")}
        )
    )
    print(json.dumps(result["stack"]["log_problems"])[:2000])
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{result['date']}-idle-{args.mode}{'-' + args.tag if args.tag else ''}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
