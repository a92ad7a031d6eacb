"""Mixed chat load: `python -m bench.mixed [--quick] [--channels 200 --per-channel 10 --rate 100]`.

Shaped like a community rather than one busy room: servers of ten text channels each, every channel
watched by `--per-channel` sockets (distinct graphql-transport-ws connections through routers A and B,
each subscribed to its own channel's `messageEvents` with the delivery benchmark's subscription), and
`--rate` messages/s offered open loop, round-robin over the channels and over 8 senders, for `--minutes`.
Reports send → receive latency over every (socket, message of its channel) pair, lost and duplicated
deliveries, whether latency grew during the run, and the CPU each process used (per message and per
delivery), so the design document's sizing (333 msg/s for 20,000 users) can be worked out from it.
Writes bench/results/<date>-mixed-full[-quick][-tag].json. See bench/README.md, "Mixed load".
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.delivery import (
    STACK_ROLES,
    Account,
    DeliveryRun,
    DeliverySettings,
    latency_by_window,
    loadavg,
    refresh_tokens,
    send_open_loop,
    send_open_loop_node,
    send_routers,
    sign_up,
)
from bench.live import NodeReceiver, Subscriber, SubscriberLog
from bench.load import Gql, latency_summary, pooled_client
from bench.procs import CpuMeter
from bench.profile_send import ProfileSettings, Sampler, finish_samplers, node_profile, start_samplers
from bench.run import RESULTS, bounded_gather, run_mode
from bench.timeline import (
    CpuTimeline,
    latency_by_second,
    pauses_over_run,
    postgres_events,
    print_slowest,
    resident_mib,
    router_memory_mib,
    scrape_metrics,
    slowest_seconds,
)
from tests.harness.services import PostgresServer
from tests.harness.stack import Stack
from tests.integration.flows import CREATE_CHANNEL, CREATE_SERVER, JOIN_SERVER, MESSAGE_EVENTS

CHANNELS_PER_SERVER = 10


@dataclass
class MixedSettings:
    quick: bool
    channels: int
    per_channel: int
    rate: float
    seconds: float
    senders: int = 8
    listener_users: int = 50  # sockets share users: sign-ups cost Argon2 (see bench/README.md, Delivery)
    max_inflight: int = 64
    drain_s: float = 30.0
    profile_rate: int = 0  # py-spy samples/s per Python process during the send window (0: no profile)
    both_routers: bool = False  # the Node sender spreads its sends over routers A and B (else A only)
    prime: bool = False  # one message per channel before the measured sends (every stream has its cursor)
    node_senders: bool = True  # bench/senders.mjs sends (the Python sender cost ~0.3 cores of the 2)


@dataclass
class MixedSeed:
    channels: list[str]
    senders: list[Account]
    listeners: list[Account]


async def seed_mixed(gql: Gql, s: MixedSettings) -> MixedSeed:
    channels: list[str] = []
    servers: list[str] = []
    server_count = math.ceil(s.channels / CHANNELS_PER_SERVER)
    # An owner per server: creating channels is rate limited per user (120 per 10 minutes).
    owners = await bounded_gather(4, [functools.partial(sign_up, gql, "mowner") for _ in range(server_count)])
    for index, owner in enumerate(owners):
        created = await gql.data(
            CREATE_SERVER, {"input": {"name": f"Mixed {index}", "visibility": "PUBLIC"}}, owner.token
        )
        server_id = created["createServer"]["id"]
        servers.append(server_id)
        for n in range(min(CHANNELS_PER_SERVER, s.channels - len(channels))):
            made = await gql.data(
                CREATE_CHANNEL, {"input": {"serverId": server_id, "name": f"room-{n}"}}, owner.token
            )
            channels.append(made["createChannel"]["id"])
    others = await bounded_gather(
        4,
        [
            *(functools.partial(sign_up, gql, "msend") for _ in range(s.senders)),
            *(functools.partial(sign_up, gql, "mlisten") for _ in range(s.listener_users)),
        ],
    )

    async def join(account: Account, server_id: str) -> None:
        data = await gql.data(JOIN_SERVER, {"id": server_id}, account.token)
        assert data["joinServer"]["__typename"] == "Server", data

    await bounded_gather(4, [functools.partial(join, a, sid) for a in others for sid in servers])
    return MixedSeed(channels, others[: s.senders], others[s.senders :])


def analyse_mixed(
    sent_at: dict[int, float], channel_of: dict[int, str], logs: list[SubscriberLog], channels: list[str]
) -> dict[str, Any]:
    """Every socket against the messages sent to its own channel."""
    by_channel: dict[str, dict[int, float]] = {c: {} for c in channels}
    for seq, at in sent_at.items():
        by_channel[channel_of[seq]][seq] = at
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (sent at, latency) for the trend
    by_router: dict[str, list[float]] = {"a": [], "b": []}  # sockets alternate between the routers
    lost = duplicates = 0
    errors: list[str] = []
    for index, (log, channel) in enumerate(zip(logs, subscriber_channels(channels, len(logs)), strict=True)):
        expected = by_channel[channel]
        got = dict(log.received)
        for seq, sent in expected.items():
            at = got.get(seq)
            if at is None:
                lost += 1
                continue
            latencies.append(at - sent)
            timeline.append((sent, at - sent))
            by_router["ab"[index % 2]].append(at - sent)
        duplicates += log.duplicates
        errors += log.errors[:1]
    timeline.sort()
    quarter = len(timeline) // 4

    def median(values: list[float]) -> float | None:
        ordered = sorted(values)
        return round(ordered[len(ordered) // 2], 1) if ordered else None

    return {
        "expected_deliveries": sum(len(by_channel[c]) for c in subscriber_channels(channels, len(logs))),
        "delivered": len(latencies),
        "lost": lost,
        "duplicates": duplicates,
        "subscription_errors": errors[:5],
        "send_to_receive": latency_summary(latencies),
        "median_latency_first_quarter_ms": median([lat for _, lat in timeline[:quarter]]),
        "median_latency_last_quarter_ms": median([lat for _, lat in timeline[-quarter:]] if quarter else []),
        "send_to_receive_by_router": {k: latency_summary(v) for k, v in by_router.items() if v},
        "latency_by_10_seconds": latency_by_window(timeline, 10_000.0),
        "_pairs": timeline,  # (sent at, latency): for the slowest seconds, not written
    }


def subscriber_channels(channels: list[str], sockets: int) -> list[str]:
    """Socket i watches channel i mod channels (so every channel has the same number of sockets)."""
    return [channels[i % len(channels)] for i in range(sockets)]


async def mixed_body(stack: Stack, s: MixedSettings) -> dict[str, Any]:
    delivery = DeliverySettings.make(s.quick, [1], "flows")
    async with pooled_client(s.max_inflight + 8, keepalive_expiry=2.0) as http:
        gql = Gql(http, stack.router_url)
        began = time.monotonic()
        seed = await seed_mixed(gql, s)
        seed_s = time.monotonic() - began
        print(f"  seeded {len(seed.channels)} channels, {len(seed.listeners)} listeners in {seed_s:.0f}s")
        run = DeliveryRun(stack, delivery, gql, seed.channels[0])
        await refresh_tokens(gql, [*seed.senders, *seed.listeners], older_than_s=0.0)  # 15-minute tokens
        sockets = len(seed.channels) * s.per_channel
        routers = [u for u in (stack.router_url, stack.second_router_url) if u]
        watching = subscriber_channels(seed.channels, sockets)
        subscribers = [
            Subscriber(routers[i % len(routers)], seed.listeners[i % len(seed.listeners)].token, channel)
            for i, channel in enumerate(watching)
        ]
        receiver = NodeReceiver(
            subscribers, MESSAGE_EVENTS, seed.channels[0], "unused ", stack.workdir / "listeners-mixed.log"
        )
        connect_began = time.monotonic()
        await receiver.start(s.drain_s)
        try:
            run.meter.add("listeners-node", receiver.pid or 0)
            connect_s = time.monotonic() - connect_began
            print(f"  {sockets} sockets up in {connect_s:.1f}s", flush=True)
            await asyncio.sleep(2.0)  # the last subscriptions reach their subgraphs
            if s.prime:
                # One message per channel before the clock: every shared stream has had its first event
                # (the fan-out tier then reopens it from that cursor): the steady state, not a fresh
                # router's first minute.
                await send_open_loop_node(
                    send_routers(stack, s.both_routers), [a.token for a in seed.senders], seed.channels,
                    "prime", 50.0, len(seed.channels), 60.0, s.max_inflight, stack.workdir,
                )  # fmt: skip
                if not await receiver.wait_primed(60.0):  # every socket had its channel's first event
                    raise SystemExit("--prime: not every socket got its channel's first message in 60 s")
                await asyncio.sleep(5.0)
            idle = await run.wait_stack_idle(60.0)
            prefix = "mixed"
            await receiver.step(prefix)
            count = round(s.rate * s.seconds)
            load_before = loadavg()
            senders = [a.token for a in seed.senders]
            samplers, router = start_profiles(stack, s)
            python_ports = {**stack.subgraph_ports, "worker": stack.worker_port}
            router_ports = {n: int(e["BEEP_ROUTER_METRICS_PORT"]) for n, e in stack.router_envs.items()}
            pauses_before = scrape_metrics(python_ports)
            routers_before = scrape_metrics(router_ports)
            memory_before = resident_mib(run.meter)
            before = run.meter.snapshot()
            cpu_timeline = CpuTimeline(run.meter)
            cpu_timeline.start()
            cap_s = s.seconds * 1.5 + 10
            sender_cpu_s: float | None = None
            if s.node_senders:
                routers = send_routers(stack, s.both_routers)
                sent, sender_cpu_s = await send_open_loop_node(
                    routers,
                    senders,
                    seed.channels,
                    prefix,
                    s.rate,
                    count,
                    cap_s,
                    s.max_inflight,
                    stack.workdir,
                )
            else:
                sent = await send_open_loop(
                    gql, senders, seed.channels, prefix, s.rate, count, cap_s, s.max_inflight
                )
            channel_of = {seq: seed.channels[seq % len(seed.channels)] for seq in sent.sent_at}
            per_channel: dict[str, int] = {}
            for channel in channel_of.values():
                per_channel[channel] = per_channel.get(channel, 0) + 1
            logs = await receiver.finish(len(sent.sent_at), s.drain_s, per_channel)
            cpu = CpuMeter.usage(before, run.meter.snapshot())
            await cpu_timeline.stop()
            memory = {"before": memory_before, "after": resident_mib(run.meter)}
            print("  resident MiB before -> after: " + ", ".join(
                f"{k} {v} -> {memory['after'].get(k)}" for k, v in memory_before.items() if v >= 20
            ))  # fmt: skip
            pauses = pauses_over_run(pauses_before, scrape_metrics(python_ports))
            router_memory = router_memory_mib(routers_before, scrape_metrics(router_ports))
            print(f"  routers' memory MiB [before, after]: {router_memory}")
            for name, row in pauses.items():
                print(f"  pauses {name}: " + ", ".join(f"{k} {v:g}" for k, v in row.items() if v))
            profiles = finish_samplers(samplers) if samplers else {}
            if router is not None:
                profiles["router-a"] = await router
        finally:
            await receiver.close()
    analysed = analyse_mixed(sent.sent_at, channel_of, logs, seed.channels)
    seconds = slowest_by_second(stack, sent, analysed.pop("_pairs"), cpu_timeline)
    cores: dict[str, float] = cpu["cores_by_process"]  # type: ignore[assignment]
    window: float = cpu["window_s"]  # type: ignore[assignment]
    stack_cores = sum(v for k, v in cores.items() if k not in STACK_ROLES)
    messages = max(len(sent.sent_at), 1)
    achieved = (sent.issued - 1) / sent.issue_span_s if sent.issued > 1 and sent.issue_span_s else 0.0
    return {
        "seed": {"seconds": round(seed_s, 1), "channels": len(seed.channels), "users": len(seed.listeners)},
        "sockets": sockets,
        "connect_s": round(connect_s, 1),
        "stack_idle_before": idle,
        "subscription": MESSAGE_EVENTS,
        "offered_rate_per_s": s.rate,
        "messages_planned": count,
        "messages_sent": len(sent.sent_at),
        "send_errors": len(sent.errors),
        "send_error_samples": sent.errors[:3],
        "late_issues": sent.late_issues,
        "achieved_send_rate_per_s": round(achieved, 2),
        "send_mutation_latency": latency_summary(sent.send_ms),
        **analysed,
        "deliveries_per_s": round(analysed["delivered"] / max(sent.total_s, 1e-9), 1),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpu": cpu,
        "stack_cores": round(stack_cores, 3),
        "stack_cpu_ms_per_message": round(stack_cores * window / messages * 1000, 2),
        "cpu_ms_per_message": {k: round(v * window / messages * 1000, 2) for k, v in cores.items()},
        "stack_cpu_ms_per_delivery": round(stack_cores * window / max(analysed["delivered"], 1) * 1000, 3),
        "senders": "node" if sender_cpu_s is not None else "python",
        **(
            {"senders_node_cpu_ms_per_message": round(sender_cpu_s / messages * 1000, 2)}
            if sender_cpu_s is not None
            else {}
        ),
        "slowest_seconds": seconds,
        "pauses": pauses,
        "resident_mib": memory,
        "router_memory_mib": router_memory,
        **({"profiles": profiles} if profiles else {}),
    }


def slowest_by_second(
    stack: Stack, sent: Any, pairs: list[tuple[float, float]], cpu: CpuTimeline
) -> dict[str, Any]:
    """The slowest seconds of send time with each process's CPU then, the send mutation's own p99 in that
    second, and PostgreSQL's checkpoints and autovacuum runs nearby (bench/timeline.py)."""
    if not pairs:
        return {}
    start_ms = pairs[0][0]
    postgres = next((s for s in stack.services if isinstance(s, PostgresServer)), None)
    events = postgres_events(postgres.root / "postgres.log", start_ms / 1000) if postgres else []
    summary = slowest_seconds(latency_by_second(pairs, start_ms), cpu, start_ms, events)
    answers = [(sent.sent_at[q], ms) for q, ms in sent.answer_ms.items() if q in sent.sent_at]
    send_p99 = latency_by_second(answers, start_ms)
    for row in summary["slowest"]:
        row["send_p99_ms"] = send_p99.get(row["second"], (0, None))[1]
    summary["postgres_events"] = events
    print_slowest(summary)
    return summary


def start_profiles(
    stack: Stack, s: MixedSettings
) -> tuple[list[Sampler], asyncio.Task[dict[str, Any]] | None]:
    """py-spy on every Python process and the inspector on router A for the send window (`--profile`)."""
    if not s.profile_rate:
        return [], None
    settings = ProfileSettings(False, s.rate, s.seconds, s.profile_rate)
    samplers = start_samplers(stack, settings)
    router_pid = next(p.pid for name, p in stack.processes if name == "router-a")
    return samplers, asyncio.create_task(node_profile(router_pid, s.seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 channels x 2 sockets, 10 msg/s, 30 s")
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--per-channel", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--profile", type=int, default=0, metavar="HZ", help="py-spy samples/s (0: off)")
    parser.add_argument("--both-routers", action="store_true", help="send through routers A and B")
    parser.add_argument("--prime", action="store_true", help="one message per channel before the clock")
    parser.add_argument("--python-senders", action="store_true", help="send with httpx, as before")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        settings = MixedSettings(True, 20, 2, 10.0, 30.0, listener_users=10, drain_s=15.0)
    else:
        settings = MixedSettings(False, args.channels, args.per_channel, args.rate, args.minutes * 60)
    settings.profile_rate = args.profile
    settings.node_senders = not args.python_senders
    settings.both_routers = args.both_routers
    settings.prime = args.prime
    result = run_mode("full", settings, mixed_body)  # type: ignore[arg-type]
    result["scenario"] = "mixed"
    result["settings"] = asdict(settings)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        suffix = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
        path = RESULTS / f"{result['date']}-mixed-full{suffix}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}", flush=True)
    keys = (
        "sockets", "achieved_send_rate_per_s", "delivered", "expected_deliveries", "lost", "duplicates",
        "send_to_receive", "median_latency_first_quarter_ms", "median_latency_last_quarter_ms",
        "stack_cores", "stack_cpu_ms_per_message", "stack_cpu_ms_per_delivery", "cpu_ms_per_message",
        "senders_node_cpu_ms_per_message",
    )  # fmt: skip
    print(json.dumps({k: result.get(k) for k in keys}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
