"""Beep load benchmark through the router: `python -m bench.run [--mode embedded|full|both] [--quick]`.

Starts the real stack (tests/harness/stack.py) with the router's in-flight deduplication off, seeds users,
a public server and a text channel, then runs bounded scenarios (a fixed count and a time cap each):
sendMessage at concurrency 1 and 8, channel history at concurrency 8, and live delivery to N subscribers.
Writes bench/results/<date>-<mode>[-quick].json and prints a summary table. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

# Must be in the environment before the stack starts: the harness hands os.environ to the router.
os.environ["BEEP_ROUTER_DEDUPE"] = "0"
# The test harness keeps database pools tiny to expose connection hoarding; a benchmark wants real ones.
os.environ.setdefault("BEEP_TEST_DB_POOL_SIZE", "10")
os.environ.setdefault("BEEP_TEST_DB_POOL_WARM", "4")  # the product's default (subgraphs/kernel/settings.py)
# PostgreSQL with its durable defaults (fsync, synchronous_commit, full_page_writes), as in production;
# the tests turn them off. BEEP_TEST_PG_DURABLE=0 measures the tests' setting.
os.environ.setdefault("BEEP_TEST_PG_DURABLE", "1")
# Checkpoints (logged by default since PostgreSQL 15) and every autovacuum run in the server's log, in UTC:
# bench/timeline.py lines them up with the slow seconds. Logging a few lines a minute costs nothing.
os.environ.setdefault("BEEP_TEST_PG_OPTIONS", "-c log_autovacuum_min_duration=0 -c log_timezone=UTC")

import beep.router as beep_router
from bench.live import (
    LiveSettings,
    NodeReceiver,
    PythonReceiver,
    Receiver,
    Subscriber,
    analyse,
    send_paced,
)
from bench.load import Gql, LoadOutcome, closed_loop, latency_summary, pooled_client
from bench.procs import (
    CpuMeter,
    CpuSnapshot,
    machine_facts,
    postgres_version,
    redis_version,
    wait_for_quiet,
)
from tests.harness.stack import Stack, start_embedded, start_full
from tests.integration.flows import (
    CREATE_CHANNEL,
    CREATE_SERVER,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    SIGN_UP,
)

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results"

HISTORY = """
query History($channelId: ID!, $first: Int, $before: String) {
  messages(channelId: $channelId, first: $first, before: $before) {
    edges { cursor node { id content createdAt author { id username } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@dataclass
class Settings:
    quick: bool
    sends_c1: int
    sends_c8: int
    history_min_messages: int
    history_newest: int
    history_deep: int
    history_concurrency: int
    senders: int
    subscribers: int
    live_messages: int
    live_rate_per_s: float
    live_receivers: list[str]
    warmup: int
    cap_s: float
    live_cap_s: float
    drain_s: float
    quiet_wait_s: float

    @classmethod
    def make(cls, quick: bool, receivers: list[str]) -> Settings:
        if quick:
            return cls(
                quick=True, sends_c1=50, sends_c8=200, history_min_messages=300, history_newest=200,
                history_deep=100, history_concurrency=8, senders=8, subscribers=10, live_messages=30,
                live_rate_per_s=5.0, live_receivers=receivers, warmup=8, cap_s=20.0, live_cap_s=20.0,
                drain_s=10.0, quiet_wait_s=0.0,
            )  # fmt: skip
        # Live: 1 message/s to 20 subscribers (20 deliveries/s) is below what this 2-core VM sustains (about
        # 30-45 deliveries/s); faster offered rates measure a growing queue (README, "saturation runs").
        return cls(
            quick=False, sends_c1=300, sends_c8=1000, history_min_messages=1000, history_newest=600,
            history_deep=400, history_concurrency=8, senders=8, subscribers=20, live_messages=100,
            live_rate_per_s=1.0, live_receivers=receivers, warmup=16, cap_s=60.0, live_cap_s=110.0,
            drain_s=30.0, quiet_wait_s=5.0,
        )  # fmt: skip


@dataclass
class Seed:
    server_id: str
    channel_id: str
    senders: list[str] = field(default_factory=list)  # tokens; senders[0] owns the server
    listeners: list[str] = field(default_factory=list)
    channel_messages: int = 0
    cursors: list[str] = field(default_factory=list)  # of sent messages, oldest first (roughly)


async def sign_up_payload(gql: Gql, prefix: str) -> dict[str, Any]:
    """A new user through the router: the AuthPayload (accessToken, refreshToken, ...)."""
    username = f"{prefix}{secrets.token_hex(4)}"
    data = await gql.data(
        SIGN_UP,
        {
            "input": {
                "firstName": "Bench",
                "lastName": prefix.title(),
                "username": username,
                "email": f"{username}@example.test",
                "password": f"pw-{secrets.token_hex(8)}",
            }
        },
    )
    payload: dict[str, Any] = data["signUp"]
    assert payload["__typename"] == "AuthPayload", payload
    return payload


async def sign_up(gql: Gql, prefix: str) -> str:
    token: str = (await sign_up_payload(gql, prefix))["accessToken"]
    return token


async def bounded_gather(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def seed(gql: Gql, settings: Settings) -> Seed:
    owner = await sign_up(gql, "bowner")
    server = await gql.data(CREATE_SERVER, {"input": {"name": "Bench", "visibility": "PUBLIC"}}, owner)
    server_id = server["createServer"]["id"]
    channel = await gql.data(CREATE_CHANNEL, {"input": {"serverId": server_id, "name": "bench"}}, owner)
    result = Seed(server_id, channel["createChannel"]["id"], senders=[owner])
    others = await bounded_gather(
        4,
        [
            *(lambda: sign_up(gql, "bsend") for _ in range(settings.senders - 1)),
            *(lambda: sign_up(gql, "blisten") for _ in range(settings.subscribers)),
        ],
    )
    result.senders += others[: settings.senders - 1]
    result.listeners = others[settings.senders - 1 :]

    def join(token: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            data = await gql.data(JOIN_SERVER, {"id": server_id}, token)
            assert data["joinServer"]["__typename"] == "Server", data

        return run

    await bounded_gather(4, [join(token) for token in [*result.senders[1:], *result.listeners]])
    return result


def send_operation(gql: Gql, seed: Seed, label: str) -> Callable[[int, int], Awaitable[None]]:
    async def operation(worker: int, index: int) -> None:
        token = seed.senders[worker % len(seed.senders)]
        variables = {"input": {"channelId": seed.channel_id, "content": f"bench {label} {index}"}}
        data = await gql.data(SEND_MESSAGE, variables, token)
        message = data["sendMessage"]
        assert message["__typename"] == "Message", message
        assert message["author"]["username"], message
        seed.channel_messages += 1
        seed.cursors.append(message["cursor"])

    return operation


def history_operation(
    gql: Gql, seed: Seed, deep: bool, rng: random.Random
) -> Callable[[int, int], Awaitable[None]]:
    # Deep pages start before a random message with at least 50 older ones (the cursor list is in send
    # order, which is close to id order; a page of <50 would still be counted, so check below).
    usable = seed.cursors[60:]

    async def operation(worker: int, index: int) -> None:
        variables: dict[str, Any] = {"channelId": seed.channel_id, "first": 50}
        if deep:
            variables["before"] = rng.choice(usable)
        data = await gql.data(HISTORY, variables, seed.senders[worker % len(seed.senders)])
        edges = data["messages"]["edges"]
        assert len(edges) == 50, f"{len(edges)} edges"
        assert all(edge["node"]["author"]["username"] for edge in edges)

    return operation


class Runner:
    def __init__(self, stack: Stack, settings: Settings) -> None:
        self.stack = stack
        self.settings = settings
        self.meter = CpuMeter()
        for name, process in stack.processes:
            self.meter.add(name, process.pid)
        for service in stack.services:
            pid = getattr(getattr(service, "process", None), "pid", None)
            if pid is None and hasattr(service, "datadir"):
                pid_file = service.datadir / "postmaster.pid"
                pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            if pid is not None:
                self.meter.add(type(service).__name__.replace("Server", "").lower(), pid)
        self.meter.add("bench-client", os.getpid(), tree=False)
        self.scenarios: dict[str, Any] = {}

    def _cpu(self, before: CpuSnapshot, completed: int) -> dict[str, Any]:
        after = self.meter.snapshot()
        usage = CpuMeter.usage(before, after)
        elapsed = after.wall - before.wall
        if completed:
            cores: dict[str, float] = usage["cores_by_process"]  # type: ignore[assignment]
            usage["cpu_ms_per_request"] = {
                name: round(value * elapsed / completed * 1000, 2) for name, value in cores.items()
            }
        return usage

    async def load(
        self,
        name: str,
        concurrency: int,
        total: int,
        operation: Callable[[int, int], Awaitable[None]],
        describe: str,
    ) -> None:
        quiet = await wait_for_quiet(self.settings.quiet_wait_s)
        warm = await closed_loop(concurrency, self.settings.warmup, self.settings.cap_s, operation)
        before = self.meter.snapshot()
        outcome: LoadOutcome = await closed_loop(concurrency, total, self.settings.cap_s, operation)
        summary = outcome.summary()
        summary["what"] = describe
        summary["warmup_errors"] = warm.errors
        summary["machine_before"] = quiet
        summary["cpu"] = self._cpu(before, len(outcome.latencies_ms))
        self.scenarios[name] = summary
        lat = summary["latency"]
        print(
            f"  {name}: {summary['completed_ok']} ok, {summary['errors']} errors, "
            f"{summary['throughput_rps']} req/s, p50 {lat.get('p50_ms')} p95 {lat.get('p95_ms')} "
            f"p99 {lat.get('p99_ms')} ms",
            flush=True,
        )

    async def live(self, gql: Gql, seed: Seed, receiver_name: str) -> None:
        s = self.settings
        routers = [u for u in (self.stack.router_url, self.stack.second_router_url) if u]
        subscribers = [Subscriber(routers[i % len(routers)], token) for i, token in enumerate(seed.listeners)]
        prefix = f"live-{receiver_name}-{secrets.token_hex(2)} "
        receiver: Receiver
        if receiver_name == "node" and not NodeReceiver.available():  # checked after the harness's npm ci
            print("  graphql-ws/ws not in router/node_modules: the Python receiver is used", file=sys.stderr)
            receiver_name = "python"
        if receiver_name == "node":
            receiver = NodeReceiver(
                subscribers,
                MESSAGE_EVENTS,
                seed.channel_id,
                prefix,
                self.stack.workdir / "listeners-node.log",
            )
        else:
            receiver = PythonReceiver(subscribers, MESSAGE_EVENTS, seed.channel_id, prefix)
        live = LiveSettings(s.live_messages, s.live_rate_per_s, s.live_cap_s, s.drain_s)
        sender = seed.senders[0]
        quiet = await wait_for_quiet(s.quiet_wait_s)
        try:
            began = time.monotonic()
            await receiver.start(s.drain_s)
            if receiver.pid is not None:
                self.meter.add("listeners-node", receiver.pid)
            primed = False
            for attempt in range(30):
                await gql.data(
                    SEND_MESSAGE,
                    {"input": {"channelId": seed.channel_id, "content": f"probe {attempt}"}},
                    sender,
                )
                seed.channel_messages += 1
                if await receiver.wait_primed(1.0):
                    primed = True
                    break
            await asyncio.sleep(1.0)  # let straggling probe events drain before measuring
            setup_s = time.monotonic() - began
            before = self.meter.snapshot()
            sent_at, send_ms, send_errors, send_s, capped = await send_paced(
                gql, sender, seed.channel_id, prefix, live
            )
            seed.channel_messages += len(sent_at)
            logs = await receiver.finish(len(sent_at), s.drain_s)
            cpu = CpuMeter.usage(before, self.meter.snapshot())
        finally:
            await receiver.close()
            self.meter.remove("listeners-node")
        analysed = analyse(sent_at, logs)
        delivered = analysed["delivered"]
        if delivered:
            cores: dict[str, float] = cpu["cores_by_process"]  # type: ignore[assignment]
            window: float = cpu["window_s"]  # type: ignore[assignment]
            cpu["cpu_ms_per_delivery"] = {
                k: round(v * window / delivered * 1000, 2) for k, v in cores.items()
            }
        result = {
            "what": f"{len(subscribers)} subscribers on one channel over graphql-transport-ws through "
            f"{len(routers)} router(s); {s.live_messages} messages sent one at a time at "
            f"{s.live_rate_per_s:g}/s offered; receiver: {receiver.name}",
            "receiver": receiver.name,
            "subscribers": len(subscribers),
            "all_subscribed_and_primed": primed,
            "machine_before": quiet,
            "setup_s": round(setup_s, 2),
            "messages_sent": len(sent_at),
            "send_errors": len(send_errors),
            "send_error_samples": send_errors[:3],
            "hit_time_cap": capped,
            "send_phase_s": round(send_s, 2),
            "achieved_send_rate_per_s": round(len(sent_at) / send_s, 1) if send_s else 0.0,
            "send_mutation_latency": latency_summary(send_ms),
            **analysed,
            "cpu": cpu,
        }
        self.scenarios[f"live_{receiver_name}"] = result
        lat = result["send_to_receive"]
        print(
            f"  live_{receiver_name}: {result['delivered']}/{result['expected_deliveries']} delivered, "
            f"lost {result['lost']}, p50 {lat.get('p50_ms')} p95 {lat.get('p95_ms')} ms",
            flush=True,
        )


async def scenarios(stack: Stack, settings: Settings) -> dict[str, Any]:
    runner = Runner(stack, settings)
    rng = random.Random(20261128)  # picks history pages, not secrets
    async with pooled_client(32) as http:
        gql = Gql(http, stack.router_url)
        began = time.monotonic()
        data = await seed(gql, settings)
        seed_s = time.monotonic() - began
        print(
            f"  seeded {len(data.senders)} senders, {len(data.listeners)} subscribers in {seed_s:.1f}s",
            flush=True,
        )

        await runner.load(
            "send_c1",
            1,
            settings.sends_c1,
            send_operation(gql, data, "c1"),
            "sendMessage (returns author { username }: messages + users subgraphs), one at a time",
        )
        await runner.load(
            "send_c8",
            8,
            settings.sends_c8,
            send_operation(gql, data, "c8"),
            "sendMessage, 8 concurrent senders (8 users) into the same channel",
        )
        top_up = max(settings.history_min_messages - data.channel_messages, 0)
        if top_up:
            began = time.monotonic()
            outcome = await closed_loop(8, top_up, 120.0, send_operation(gql, data, "seed"))
            print(
                f"  topped up the channel with {len(outcome.latencies_ms)} messages in "
                f"{time.monotonic() - began:.1f}s",
                flush=True,
            )
        messages_in_channel = data.channel_messages
        await runner.load(
            "history_newest_c8",
            settings.history_concurrency,
            settings.history_newest,
            history_operation(gql, data, False, rng),
            f"messages(first: 50) newest page with author {{ username }} over a channel of "
            f"{messages_in_channel} messages, 8 concurrent",
        )
        await runner.load(
            "history_deep_c8",
            settings.history_concurrency,
            settings.history_deep,
            history_operation(gql, data, True, rng),
            "messages(first: 50, before: <random cursor>) with author { username }, 8 concurrent",
        )
        for receiver in settings.live_receivers:
            await runner.live(gql, data, receiver)
    return {
        "seed": {
            "seconds": round(seed_s, 2),
            "senders": len(data.senders),
            "subscribers": len(data.listeners),
            "history_channel_messages": messages_in_channel,
            "channel_messages_at_end": data.channel_messages,
        },
        "scenarios": runner.scenarios,
    }


def router_configs(stack: Stack) -> list[dict[str, Any]]:
    """The router's own start-up log line: proves dedupe is off in the process that was measured."""
    configs = []
    for log in sorted(stack.workdir.glob("router*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "[beep-router] configuration" in line and line.startswith("{"):
                entry = json.loads(line)
                configs.append(
                    {
                        "log": log.name,
                        "dedupe": entry.get("dedupe"),
                        "fanout": entry.get("fanout"),
                        "supergraph": entry.get("supergraph"),
                    }
                )
    return configs


def stack_log_problems(stack: Stack) -> dict[str, Any]:
    counts: dict[str, int] = {}
    samples: list[str] = []
    for log in sorted(stack.workdir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            lowered = line[:200].lower()
            if '"level":"error"' in lowered.replace(" ", "") or "traceback" in lowered:
                counts[log.name] = counts.get(log.name, 0) + 1
                if len(samples) < 5:
                    samples.append(f"{log.name}: {line[:400]}")
    return {"error_lines_by_log": counts, "samples": samples}


def pin_supergraph() -> Path:
    """The router watches its supergraph file and hot-reloads it, which aborts every live subscription
    (SCHEMA_RELOAD). The working tree may be edited while a benchmark runs, so the routers started here
    read a private copy, which is returned."""
    source = beep_router.ROOT / "supergraph" / "supergraph.graphql"
    pinned = Path(tempfile.mkdtemp(prefix="beep-bench-supergraph-")) / "supergraph.graphql"
    shutil.copyfile(source, pinned)
    beep_router.SUPERGRAPH = pinned  # read by router_env() and start_router() at call time
    return pinned


Body = Callable[[Stack, Any], Coroutine[Any, Any, dict[str, Any]]]


def stack_settings() -> dict[str, str]:
    """`BENCH_STACK_ENV="BEEP_X=1 BEEP_Y=2"`: settings for every process of the full stack, for A/B runs of a
    setting (the harness passes no BEEP_* variable of its own environment through)."""
    pairs = (item.split("=", 1) for item in os.environ.get("BENCH_STACK_ENV", "").split())
    settings = {k: v for k, v in pairs}
    if any(not k.startswith("BEEP_") for k in settings):
        raise SystemExit(f"BENCH_STACK_ENV takes BEEP_* settings only: {settings}")
    return settings


def run_mode(mode: str, settings: Any, body_of: Body | None = None) -> dict[str, Any]:
    """Starts a stack in `mode`, runs `body_of(stack, settings)` (default: `scenarios`), stops it."""
    print(f"[{mode}] starting the stack", flush=True)
    began = time.monotonic()
    facts = machine_facts()
    pinned = pin_supergraph()
    supergraph_sha256 = hashlib.sha256(pinned.read_bytes()).hexdigest()
    extra_env = stack_settings()
    try:
        stack = start_full(extra_env=extra_env) if mode == "full" else start_embedded()
    except BaseException:
        shutil.rmtree(pinned.parent, ignore_errors=True)
        raise
    started_s = time.monotonic() - began
    try:
        configs = router_configs(stack)
        if not configs or any(c["dedupe"] is not False or c["supergraph"] != str(pinned) for c in configs):
            raise SystemExit(f"the routers must run with dedupe off on the pinned supergraph: {configs}")
        print(
            f"[{mode}] up in {started_s:.1f}s; {len(configs)} router(s), dedupe off, supergraph pinned",
            flush=True,
        )
        body = asyncio.run((body_of or scenarios)(stack, settings))
        problems = stack_log_problems(stack)
    finally:
        stack.stop()
        shutil.rmtree(pinned.parent, ignore_errors=True)
    result: dict[str, Any] = {
        "date": date.today().isoformat(),
        "mode": mode,
        "quick": settings.quick,
        "machine": facts,
        "settings": asdict(settings),
        "stack": {
            "start_s": round(started_s, 1),
            "processes": [name for name, _ in stack.processes],
            "router_config": configs,
            "supergraph_sha256": supergraph_sha256,
            "router_urls_used": [u for u in (stack.router_url, stack.second_router_url) if u],
            "settings": extra_env,
            "log_problems": problems,
        },
        **body,
        "total_s": round(time.monotonic() - began, 1),
    }
    if mode == "full":
        result["machine"]["postgres"] = postgres_version()
        result["machine"]["redis"] = redis_version()
        result["machine"]["postgres_durable"] = os.environ.get("BEEP_TEST_PG_DURABLE") == "1"
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| mode | scenario | n ok | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, s in result["scenarios"].items():
            if name.startswith("live_"):
                lat = s["send_to_receive"]
                cells = [
                    f"{name} ({s['subscribers']} subs, lost {s['lost']})",
                    f"{s['delivered']}/{s['expected_deliveries']}",
                    s["send_errors"],
                    f"{s['deliveries_per_s']} deliv/s",
                ]
            else:
                lat = s["latency"]
                cells = [name, s["completed_ok"], s["errors"], s["throughput_rps"]]
            cells = [result["mode"], *cells, lat.get("p50_ms"), lat.get("p95_ms"), lat.get("p99_ms")]
            rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--mode", choices=["embedded", "full", "both"], default="embedded")
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a smoke run in about a minute per mode"
    )
    parser.add_argument(
        "--receiver",
        choices=["node", "python", "both"],
        default="node",
        help="live-delivery receiver(s); node needs graphql-ws in router/node_modules",
    )
    parser.add_argument(
        "--live-rate", type=float, default=None, help="offered messages/s in the live scenario"
    )
    parser.add_argument("--tag", default="", help="suffix for the result file name, e.g. live10ps")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args(argv)

    receivers = ["node", "python"] if args.receiver == "both" else [args.receiver]
    settings = Settings.make(args.quick, receivers)
    if args.live_rate:
        settings.live_rate_per_s = args.live_rate
    modes = ["embedded", "full"] if args.mode == "both" else [args.mode]
    began = time.monotonic()
    results = []
    for mode in modes:
        result = run_mode(mode, settings)
        results.append(result)
        if not args.no_write:
            RESULTS.mkdir(parents=True, exist_ok=True)
            suffix = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
            path = RESULTS / f"{result['date']}-{mode}{suffix}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(
                f"[{mode}] wrote {path.relative_to(RESULTS.parent.parent)} ({result['total_s']}s)", flush=True
            )
    print()
    print(table(results))
    print(f"\ntotal {time.monotonic() - began:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
