"""Delivery benchmark: `python -m bench.delivery [--mode embedded|full|both] [--quick]`.

For N subscribers on one channel (N = 1, 50, 500 by default), each its own user on its own
graphql-transport-ws socket through the router (bench/listeners.mjs, one Node process), messages are
sent at increasing offered rates (open loop: a message is issued on schedule whether or not the previous
ones have answered, at most `max_inflight` at a time, several senders). Each step reports the achieved send
rate, whether every message reached every subscriber, and send → receive latency. The highest offered rate
that is *sustained* is the result for that N (see `sustained()`). With N = 50 a fixed step at 300
messages/s offered (the issue's first target) is measured too. Writes
bench/results/<date>-delivery-<mode>[-quick][-<tag>].json. See bench/README.md, "Delivery".
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from beep.router import router_node
from bench.live import NodeReceiver, Subscriber, analyse, wall_ms
from bench.load import Gql, GraphQLFailure, latency_summary, pooled_client
from bench.procs import CpuMeter
from bench.run import RESULTS, Runner, bounded_gather, run_mode, sign_up_payload
from tests.harness.stack import Stack
from tests.integration.flows import (
    CREATE_CHANNEL,
    CREATE_SERVER,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
)

# Offered messages/s tried in order, starting at the first rate giving >= `start_deliveries_per_s`.
RATES = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500]

# The same subscription without the two foreign fields (author username -> users subgraph, channel name ->
# channels subgraph), to show how much of a delivery they cost (`--query lean`).
LEAN_EVENTS = """
subscription Events($channelId: ID!) {
  messageEvents(channelId: $channelId) {
    __typename
    ... on MessageCreated { message { id content } }
    ... on MessageUpdated { message { id content editedAt } }
    ... on MessageDeleted { messageId channelId }
  }
}"""

MAX_P99_MS = 5000  # above this a step is not "sustained" even if everything arrives in the end
STACK_ROLES = ("bench-client", "listeners-node")  # meter groups that are not the stack
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DeliverySettings:
    quick: bool
    subscriber_counts: list[int]
    senders: int
    listener_users: int  # distinct subscribing users; N > this opens several sockets per user
    step_s: float  # offered duration of one ladder step
    min_messages: int  # per step (low rates run longer than step_s)
    max_inflight: int
    start_deliveries_per_s: float
    ladder_budget_s: float  # per N: no new step starts after this
    drain_s: float  # after the last send, how long to wait for the last deliveries
    target_rate: float
    target_subscribers: int
    target_s: float
    target_drain_s: float
    idle_wait_s: float  # before a step, wait (bounded) until the stack is idle
    query: str  # "flows" (tests/integration/flows.py MESSAGE_EVENTS) or "lean"
    node_senders: bool = True  # bench/senders.mjs sends (the httpx sender cost ~5 ms of CPU per message)
    rates: tuple[float, ...] = ()  # given: these steps, in order, instead of the ladder
    both_routers: bool = False  # the Node sender spreads its sends over routers A and B (else A only)

    @classmethod
    def make(cls, quick: bool, counts: list[int] | None, query: str) -> DeliverySettings:
        counts = counts or ([1, 10] if quick else [1, 50, 500])
        if quick:
            return cls(
                quick=True, subscriber_counts=counts, senders=4, listener_users=10, step_s=4.0,
                min_messages=3, max_inflight=32, start_deliveries_per_s=5.0, ladder_budget_s=40.0,
                drain_s=8.0, target_rate=300.0, target_subscribers=10, target_s=2.0, target_drain_s=8.0,
                idle_wait_s=10.0, query=query,
            )  # fmt: skip
        return cls(
            quick=False, subscriber_counts=counts, senders=8, listener_users=50, step_s=15.0,
            min_messages=3, max_inflight=48, start_deliveries_per_s=10.0, ladder_budget_s=240.0,
            drain_s=20.0, target_rate=300.0, target_subscribers=50, target_s=5.0, target_drain_s=30.0,
            idle_wait_s=60.0, query=query,
        )  # fmt: skip


def loadavg() -> list[float]:
    """`uptime`'s three load averages: other sessions share this machine."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class Sent:
    sent_at: dict[int, float] = field(default_factory=dict)  # seq -> wall ms when the request was issued
    send_ms: list[float] = field(default_factory=list)
    answer_ms: dict[int, float] = field(default_factory=dict)  # seq -> ms until the mutation answered
    errors: list[str] = field(default_factory=list)
    issued: int = 0
    issue_span_s: float = 0.0  # first to last issue
    total_s: float = 0.0  # first issue to last answer
    capped: bool = False
    late_issues: int = 0  # issued > 100 ms after schedule (in-flight limit reached or a slow loop)


async def send_open_loop(
    gql: Gql,
    tokens: list[str],
    channel_id: str | list[str],
    prefix: str,
    rate: float,
    count: int,
    cap_s: float,
    max_inflight: int,
) -> Sent:
    """Issues message `seq` at start + seq / rate (or as soon as fewer than `max_inflight` are in flight),
    round-robin over the sender tokens (and over the channels, given several); content is
    f"{prefix} {seq}"."""
    channels = [channel_id] if isinstance(channel_id, str) else channel_id
    out = Sent()
    gate = asyncio.Semaphore(max_inflight)
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    last_issue = start

    async def one(seq: int, token: str) -> None:
        at, began = wall_ms(), time.perf_counter()
        try:
            data = await gql.data(
                SEND_MESSAGE,
                {"input": {"channelId": channels[seq % len(channels)], "content": f"{prefix} {seq}"}},
                token,
            )
            assert data["sendMessage"]["__typename"] == "Message", data
        except (GraphQLFailure, AssertionError, httpx.HTTPError, KeyError, TypeError) as exc:
            out.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        else:
            out.send_ms.append((time.perf_counter() - began) * 1000)
            out.sent_at[seq] = at
        finally:
            gate.release()

    for seq in range(count):
        scheduled = start + seq / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() - start > cap_s:
            out.capped = True
            break
        await gate.acquire()
        now = time.monotonic()
        if now - scheduled > 0.1:
            out.late_issues += 1
        last_issue = now
        out.issued += 1
        tasks.append(asyncio.create_task(one(seq, tokens[seq % len(tokens)])))
    await asyncio.gather(*tasks)
    out.issue_span_s = last_issue - start
    out.total_s = time.monotonic() - start
    return out


async def send_open_loop_node(
    router_urls: list[str],
    tokens: list[str],
    channels: list[str],
    prefix: str,
    rate: float,
    count: int,
    cap_s: float,
    max_inflight: int,
    workdir: Path,
) -> tuple[Sent, float]:
    """`send_open_loop` run by bench/senders.mjs in its own Node process: the same schedule, requests and
    result at a fraction of httpx's CPU per request; and the CPU seconds the sender used (not the stack's)."""
    config = workdir / "senders.config.json"
    config.write_text(
        json.dumps(
            {
                "urls": router_urls,
                "mutation": SEND_MESSAGE,
                "tokens": tokens,
                "channels": channels,
                "prefix": prefix,
                "rate": rate,
                "count": count,
                "capS": cap_s,
                "maxInflight": max_inflight,
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        router_node(), str(ROOT / "bench" / "senders.mjs"), str(config), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench/senders.mjs exited with {process.returncode}")
    raw = json.loads(stdout.decode().strip().splitlines()[-1])
    answer_ms = {int(seq): float(ms) for seq, ms in raw["answer_ms"].items()}
    sent = Sent(
        sent_at={int(seq): float(at) for seq, at in raw["sent_at"].items()},
        send_ms=list(answer_ms.values()),
        answer_ms=answer_ms,
        errors=[str(e) for e in raw["errors"]],
        issued=int(raw["issued"]),
        issue_span_s=float(raw["issue_span_s"]),
        total_s=float(raw["total_s"]),
        capped=bool(raw["capped"]),
        late_issues=int(raw["late_issues"]),
    )
    return sent, float(raw["cpu_s"])


def send_routers(stack: Stack, both: bool) -> list[str]:
    """Where the Node sender sends: router A (each router has its own messages process behind it), or
    both in turn as a load balancer spreads clients. On this 2-core machine spreading cost more CPU per
    message (14.95 against 12.68 ms at N = 1, 100 msg/s: each process's per-request costs fall with the
    load it carries; bench/README.md), so A alone is the default, as before."""
    second = stack.second_router_url if both else None
    return [stack.router_url, *([second] if second else [])]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else math.nan


def backlog_trend(sent_at: dict[int, float], logs: list[Any]) -> dict[str, float]:
    """Median time until the last subscriber had a message, first quarter of the step vs last quarter. A
    rate the stack keeps up with has a flat trend; above it the queue (and this) grows all the time."""
    arrivals: dict[int, float] = {}
    for log in logs:
        for seq, at in log.received:
            if seq in sent_at:
                arrivals[seq] = max(arrivals.get(seq, 0.0), at - sent_at[seq])
    complete = sorted(seq for seq in sent_at if seq in arrivals)
    if not complete:
        return {}
    quarter = max(1, len(complete) // 4)
    first = [arrivals[s] for s in complete[:quarter]]
    last = [arrivals[s] for s in complete[-quarter:]]
    return {"first_quarter_p50_ms": round(_median(first), 1), "last_quarter_p50_ms": round(_median(last), 1)}


def latency_by_second(sent_at: dict[int, float], logs: list[Any]) -> list[list[float]]:
    """Per second of the step (by send time): whether a tail is a few stalls (a checkpoint, a collection)
    or all along; every delivery counted (`latency_by_window`)."""
    timeline = sorted(
        (sent_at[seq], at - sent_at[seq]) for log in logs for seq, at in log.received if seq in sent_at
    )
    return latency_by_window(timeline, 1000.0, start=min(sent_at.values(), default=0.0))


def latency_by_window(
    timeline: list[tuple[float, float]], window_ms: float, start: float | None = None
) -> list[list[float]]:
    """[window start s, deliveries, p50, p99, max ms] of (sent at, latency) pairs sorted by send time;
    windows counted from `start` (default: the first pair's send time)."""
    if not timeline:
        return []
    start = timeline[0][0] if start is None else start
    windows: dict[int, list[float]] = {}
    for sent, latency in timeline:
        windows.setdefault(int((sent - start) // window_ms), []).append(latency)
    rows: list[list[float]] = []
    for index, values in sorted(windows.items()):
        values.sort()
        p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
        rows.append(
            [index * window_ms / 1000, len(values), round(p50, 1), round(p99, 1), round(values[-1], 1)]
        )
    return rows


def sustained(step: dict[str, Any]) -> tuple[bool, str]:
    """Sustained: every message sent without error at >= 90% of the offered rate, every subscriber got
    every message exactly once within the drain window, send -> receive p99 <= MAX_P99_MS, and the backlog
    did not grow during the step (last-quarter median time-to-last-subscriber <= 2x the first quarter's
    + 500 ms)."""
    if step["send_errors"]:
        return False, f"{step['send_errors']} send errors"
    if step["achieved_send_rate_per_s"] < 0.9 * step["offered_rate_per_s"]:
        return False, f"the senders reached only {step['achieved_send_rate_per_s']}/s"
    if step["lost"]:
        return False, f"{step['lost']} deliveries missing {step['drain_s']} s after the last send"
    if step["duplicates"]:
        return False, f"{step['duplicates']} duplicates"
    if step["subscriptions_ended_early"]:
        return False, "subscriptions ended"
    p99 = step["send_to_receive"].get("p99_ms", 0.0)
    if p99 > MAX_P99_MS:
        return False, f"p99 {p99:.0f} ms > {MAX_P99_MS} ms: messages queue"
    trend = step["backlog_trend"]
    if trend and trend["last_quarter_p50_ms"] > 2 * trend["first_quarter_p50_ms"] + 500:
        return False, "the backlog grew during the step"
    return True, "ok"


def latency_with_lost(latencies: list[float], lost: int) -> dict[str, Any]:
    """p50/p99 over every expected delivery, a missing one counting as infinitely late."""
    values = sorted(latencies) + [math.inf] * lost
    if not values:
        return {}

    def at(q: float) -> float | str:
        value = values[min(len(values) - 1, round((len(values) - 1) * q))]
        return "not delivered" if math.isinf(value) else round(value, 1)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99)}


REFRESH = """
mutation Refresh($token: String!) {
  refreshSession(refreshToken: $token) {
    __typename
    ... on AuthPayload { accessToken refreshToken }
  }
}"""


@dataclass
class Account:
    token: str
    refresh: str
    at: float  # monotonic time the access token was issued (it lives 15 minutes)


@dataclass
class DeliverySeed:
    channel_id: str
    senders: list[Account]  # senders[0] owns the server
    listeners: list[Account]


async def sign_up(gql: Gql, prefix: str) -> Account:
    payload = await sign_up_payload(gql, prefix)
    return Account(payload["accessToken"], payload["refreshToken"], time.monotonic())


async def seed_delivery(gql: Gql, settings: DeliverySettings) -> DeliverySeed:
    """A public server with one text channel; `senders` users and `listener_users` subscribing users,
    all members. Argon2 makes each sign-up cost ~0.1-0.2 s of CPU, and access tokens live 15 minutes:
    500 distinct users took 943 s on the loaded machine, so sockets share `listener_users` users."""
    owner = await sign_up(gql, "downer")
    server = await gql.data(CREATE_SERVER, {"input": {"name": "Bench", "visibility": "PUBLIC"}}, owner.token)
    server_id = server["createServer"]["id"]
    channel = await gql.data(
        CREATE_CHANNEL, {"input": {"serverId": server_id, "name": "delivery"}}, owner.token
    )
    others = await bounded_gather(
        4,
        [
            *(lambda: sign_up(gql, "dsend") for _ in range(settings.senders - 1)),
            *(lambda: sign_up(gql, "dlisten") for _ in range(settings.listener_users)),
        ],
    )

    def join(account: Account) -> Any:
        async def run() -> None:
            data = await gql.data(JOIN_SERVER, {"id": server_id}, account.token)
            assert data["joinServer"]["__typename"] == "Server", data

        return run

    await bounded_gather(4, [join(a) for a in others])
    cut = settings.senders - 1
    return DeliverySeed(channel["createChannel"]["id"], [owner, *others[:cut]], others[cut:])


async def refresh_tokens(gql: Gql, accounts: list[Account], older_than_s: float = 420.0) -> int:
    """New access tokens (refreshSession: no password hashing) for accounts whose token is older than
    `older_than_s`, so that nothing expires during the next block of steps."""

    async def one(account: Account) -> None:
        payload = (await gql.data(REFRESH, {"token": account.refresh}))["refreshSession"]
        assert payload["__typename"] == "AuthPayload", payload
        account.token, account.refresh, account.at = (
            payload["accessToken"],
            payload["refreshToken"],
            time.monotonic(),
        )

    stale = [a for a in accounts if time.monotonic() - a.at > older_than_s]
    await bounded_gather(4, [functools.partial(one, a) for a in stale])
    return len(stale)


class DeliveryRun:
    def __init__(self, stack: Stack, settings: DeliverySettings, gql: Gql, channel_id: str) -> None:
        self.stack = stack
        self.s = settings
        self.gql = gql
        self.channel_id = channel_id
        self.meter = Runner(stack, settings).meter  # type: ignore[arg-type]  # every stack process + the worker

    def stack_cores(self, usage: dict[str, Any]) -> float:
        cores: dict[str, float] = usage["cores_by_process"]
        return sum(v for k, v in cores.items() if k not in STACK_ROLES)

    async def wait_stack_idle(self, max_wait_s: float) -> dict[str, float]:
        """Bounded: until the stack's processes use < 0.25 cores (a previous step's backlog is worked off)."""
        waited = 0.0
        while True:
            before = self.meter.snapshot()
            await asyncio.sleep(1.0)
            usage = CpuMeter.usage(before, self.meter.snapshot())
            busy = self.stack_cores(usage)
            if busy < 0.25 or waited >= max_wait_s:
                return {"stack_cores": round(busy, 2), "waited_s": waited, "loadavg": loadavg()}  # type: ignore[dict-item]
            waited += 1.0

    async def step(
        self,
        receiver: NodeReceiver,
        senders: list[str],
        n: int,
        rate: float,
        count: int,
        drain_s: float,
        label: str,
    ) -> dict[str, Any]:
        idle = await self.wait_stack_idle(self.s.idle_wait_s)
        prefix = f"d{n}-{label}-{secrets.token_hex(2)}"
        await receiver.step(prefix)
        load_before = loadavg()
        before = self.meter.snapshot()
        cap_s = count / rate * 1.5 + 5
        sender_cpu_s: float | None = None
        if self.s.node_senders:
            routers = send_routers(self.stack, self.s.both_routers)
            sent, sender_cpu_s = await send_open_loop_node(
                routers, senders, [self.channel_id], prefix, rate, count, cap_s, self.s.max_inflight,
                self.stack.workdir,
            )  # fmt: skip
        else:
            sent = await send_open_loop(
                self.gql, senders, self.channel_id, prefix, rate, count, cap_s, self.s.max_inflight
            )
        logs = await receiver.finish(len(sent.sent_at), drain_s)
        cpu = CpuMeter.usage(before, self.meter.snapshot())
        if sender_cpu_s is not None and sent.sent_at:
            cpu["senders_node_cpu_ms_per_message"] = round(sender_cpu_s / len(sent.sent_at) * 1000, 2)
        analysed = analyse(sent.sent_at, logs)
        latencies = [
            at - sent.sent_at[seq] for log in logs for seq, at in log.received if seq in sent.sent_at
        ]
        achieved = (sent.issued - 1) / sent.issue_span_s if sent.issued > 1 and sent.issue_span_s else rate
        delivered = analysed["delivered"]
        if delivered:
            cores: dict[str, float] = cpu["cores_by_process"]  # type: ignore[assignment]
            window: float = cpu["window_s"]  # type: ignore[assignment]
            cpu["cpu_ms_per_delivery"] = {
                k: round(v * window / delivered * 1000, 2) for k, v in cores.items()
            }
        result: dict[str, Any] = {
            "subscribers": n,
            "offered_rate_per_s": rate,
            "messages_planned": count,
            "messages_sent": len(sent.sent_at),
            "send_errors": len(sent.errors),
            "send_error_samples": sent.errors[:3],
            "hit_time_cap": sent.capped,
            "late_issues": sent.late_issues,
            "achieved_send_rate_per_s": round(min(achieved, 10 * rate), 2),
            "send_phase_s": round(sent.total_s, 2),
            "send_mutation_latency": latency_summary(sent.send_ms),
            "drain_s": drain_s,
            **analysed,
            "latency_counting_lost": latency_with_lost(latencies, analysed["lost"]),
            "backlog_trend": backlog_trend(sent.sent_at, logs),
            "latency_by_second": latency_by_second(sent.sent_at, logs),
            # The mutation's own answer by second of the step: a slow start in the send path or after it
            "send_latency_by_second": latency_by_window(
                sorted((sent.sent_at[q], ms) for q, ms in sent.answer_ms.items() if q in sent.sent_at),
                1000.0,
                start=min(sent.sent_at.values(), default=0.0),
            ),
            "stack_idle_before": idle,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "cpu": cpu,
        }
        ok, why = sustained(result)
        result["sustained"] = ok
        result["verdict"] = why
        lat = result["send_to_receive"]
        print(
            f"    N={n} offered {rate:g}/s: sent {result['messages_sent']} at "
            f"{result['achieved_send_rate_per_s']}/s, "
            f"{result['delivered']}/{result['expected_deliveries']} delivered, p50 {lat.get('p50_ms')} "
            f"p99 {lat.get('p99_ms')} ms, stack {self.stack_cores(cpu):.2f} cores, other "
            f"{cpu['other_processes_cores']}, load {result['loadavg_before']} -> {ok} ({why})",
            flush=True,
        )
        return result

    async def prime(self, receiver: NodeReceiver, sender: str, n: int, out: dict[str, Any]) -> bool:
        """Sends probe messages until every socket has had an event (the subscriptions are live end to
        end); probe errors go to `out["probe_errors"]`."""
        for attempt in range(20):
            try:
                await self.gql.data(
                    SEND_MESSAGE,
                    {"input": {"channelId": self.channel_id, "content": f"probe {n} {attempt}"}},
                    sender,
                )
            except (GraphQLFailure, httpx.HTTPError) as exc:  # e.g. a pooled connection the router closed
                out.setdefault("probe_errors", []).append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if await receiver.wait_primed(max(2.0, n / 20)):
                return True
        return False

    async def for_subscribers(self, n: int, seed: DeliverySeed, target_only: bool = False) -> dict[str, Any]:
        s = self.s
        refreshed = await refresh_tokens(self.gql, [*seed.senders, *seed.listeners], older_than_s=60.0)
        senders = [a.token for a in seed.senders]
        listeners = [seed.listeners[i % len(seed.listeners)].token for i in range(n)]
        routers = [u for u in (self.stack.router_url, self.stack.second_router_url) if u]
        subscribers = [Subscriber(routers[i % len(routers)], token) for i, token in enumerate(listeners)]
        query = LEAN_EVENTS if s.query == "lean" else MESSAGE_EVENTS
        receiver = NodeReceiver(
            subscribers, query, self.channel_id, "unused ", self.stack.workdir / f"listeners-{n}.log"
        )
        out: dict[str, Any] = {
            "subscribers": n,
            "distinct_users": min(n, len(seed.listeners)),
            "routers": len(routers),
            "tokens_refreshed": refreshed,
            "steps": [],
        }
        await self.wait_stack_idle(s.idle_wait_s)
        began = time.monotonic()
        try:
            await receiver.start(s.drain_s)
            assert receiver.pid is not None
            self.meter.add("listeners-node", receiver.pid)
            out["connect_s"] = round(time.monotonic() - began, 2)
            primed = await self.prime(receiver, senders[0], n, out)
            out["primed"] = primed
            out["setup_s"] = round(time.monotonic() - began, 2)
            print(
                f"  N={n}: {n} sockets up in {out['connect_s']} s, primed={primed} in {out['setup_s']} s",
                flush=True,
            )
            ladder_start = time.monotonic()
            # Up from the first rate giving `start_deliveries_per_s` until a step is not sustained; if
            # the very first one is not, down instead until one is.
            start = next(
                (i for i, r in enumerate(RATES) if r * n >= s.start_deliveries_per_s), len(RATES) - 1
            )
            up, down = RATES[start:], RATES[:start][::-1]
            rates = [] if target_only else list(s.rates) if s.rates else up
            while rates:
                rate = rates.pop(0)
                if time.monotonic() - ladder_start > s.ladder_budget_s:
                    out["ladder_stopped"] = "time budget"
                    break
                count = max(s.min_messages, round(rate * s.step_s))
                step = await self.step(receiver, senders, n, rate, count, s.drain_s, f"r{rate:g}")
                out["steps"].append(step)
                if s.rates:
                    continue  # the given steps, each whatever the last gave
                if len(out["steps"]) == 1 and not step["sustained"]:
                    rates = down
                elif step["sustained"] == (rates is down):
                    break  # going up: the first failure; going down: the first success
            best = [st for st in out["steps"] if st["sustained"]]
            if best:
                top = max(best, key=lambda st: st["offered_rate_per_s"])
                out["max_sustained_rate_per_s"] = top["offered_rate_per_s"]
                out["at_max"] = {
                    "deliveries_per_s": top["deliveries_per_s"],
                    "send_to_receive": top["send_to_receive"],
                    "loadavg": top["loadavg_before"],
                    "other_processes_cores": top["cpu"]["other_processes_cores"],
                }
            else:
                lowest = min((st["offered_rate_per_s"] for st in out["steps"]), default=None)
                out["max_sustained_rate_per_s"] = f"< {lowest}" if lowest is not None else None
            failed = [st for st in out["steps"] if not st["sustained"]]
            if target_only:
                out.pop("max_sustained_rate_per_s", None)
            elif failed:
                low = min(failed, key=lambda st: st["offered_rate_per_s"])
                out["lowest_failed"] = {
                    "offered_rate_per_s": low["offered_rate_per_s"],
                    "why": low["verdict"],
                }
            if target_only:
                count = round(s.target_rate * s.target_s)
                print(f"  N={n}: fixed {s.target_rate:g}/s offered for {s.target_s:g} s", flush=True)
                out["fixed_target_rate"] = await self.step(
                    receiver, senders, n, s.target_rate, count, s.target_drain_s, "target"
                )
        finally:
            await receiver.close()
            self.meter.remove("listeners-node")
        return out


async def delivery_body(stack: Stack, settings: DeliverySettings) -> dict[str, Any]:
    # At a few messages per minute the pooled connections sit idle for longer than the router's (Node's
    # default 5 s) keep-alive, httpx's default expiry too: drop them first, so a send never races a close.
    # (One earlier run died on an httpx.ReadError from a probe send; the cause was not established.)
    async with pooled_client(settings.max_inflight + 8, keepalive_expiry=2.0) as http:
        gql = Gql(http, stack.router_url)
        began = time.monotonic()
        data = await seed_delivery(gql, settings)
        seed_s = time.monotonic() - began
        print(
            f"  seeded {len(data.senders)} senders, {len(data.listeners)} subscribers in {seed_s:.1f}s",
            flush=True,
        )
        run = DeliveryRun(stack, settings, gql, data.channel_id)
        by_n = {}
        for n in settings.subscriber_counts:
            try:
                by_n[str(n)] = await run.for_subscribers(n, data)
            except Exception as exc:  # keep what the other N measured
                print(f"  N={n} failed: {type(exc).__name__}: {exc!r}", flush=True)
                by_n[str(n)] = {"subscribers": n, "failed": f"{type(exc).__name__}: {exc!r}"[:500]}
        # The target step last, on fresh sockets: its backlog (thousands of deliveries) takes minutes to
        # work off, and 500 sockets opened behind it did not connect within the timeout.
        if settings.target_subscribers in settings.subscriber_counts:
            n = settings.target_subscribers
            try:
                target = await run.for_subscribers(n, data, target_only=True)
                by_n[str(n)]["fixed_target_rate"] = target["fixed_target_rate"]
            except Exception as exc:
                by_n[str(n)]["fixed_target_failed"] = f"{type(exc).__name__}: {exc!r}"[:500]
    return {
        "seed": {
            "seconds": round(seed_s, 2),
            "senders": len(data.senders),
            "subscribers": len(data.listeners),
        },
        "subscription": LEAN_EVENTS if settings.query == "lean" else MESSAGE_EVENTS,
        "delivery": by_n,
    }


def summary_rows(result: dict[str, Any]) -> list[str]:
    rows = []
    for n, entry in result["delivery"].items():
        at = entry.get("at_max", {})
        lat = at.get("send_to_receive", {})
        rows.append(
            f"| {result['mode']} | {n} | {entry.get('max_sustained_rate_per_s')} | "
            f"{at.get('deliveries_per_s')} | "
            f"{lat.get('p50_ms')} | {lat.get('p99_ms')} | {at.get('loadavg')} |"
        )
        fixed = entry.get("fixed_target_rate")
        if fixed:
            lat = fixed["latency_counting_lost"]
            rows.append(
                f"| {result['mode']} | {n} @ {fixed['offered_rate_per_s']:g}/s offered | sent "
                f"{fixed['achieved_send_rate_per_s']}/s | "
                f"{fixed['delivered']}/{fixed['expected_deliveries']} "
                f"delivered | {lat.get('p50_ms')} | {lat.get('p99_ms')} | {fixed['loadavg_before']} |"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "full", "both"], default="full")
    parser.add_argument("--quick", action="store_true", help="N = 1, 10 with short steps: a smoke run")
    parser.add_argument("--subscribers", default="", help="comma-separated N values (default 1,50,500)")
    parser.add_argument("--query", choices=["flows", "lean"], default="flows")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--python-senders", action="store_true", help="send with httpx, as before")
    parser.add_argument("--both-routers", action="store_true", help="send through routers A and B")
    parser.add_argument("--rates", default="", help="comma-separated msg/s steps instead of the ladder")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="each step's length (default 15)")
    args = parser.parse_args(argv)
    counts = [int(v) for v in args.subscribers.split(",") if v] or None
    settings = DeliverySettings.make(args.quick, counts, args.query)
    settings.node_senders = not args.python_senders
    settings.both_routers = args.both_routers
    settings.rates = tuple(float(v) for v in args.rates.split(",") if v)
    if args.step_seconds:
        settings.step_s = args.step_seconds
    if not NodeReceiver.available():
        raise SystemExit(
            "needs graphql-ws and ws in router/node_modules (symlink /work/main/router/node_modules)"
        )
    modes = ["full", "embedded"] if args.mode == "both" else [args.mode]
    rows = [
        "| mode | N | max sustained msg/s | deliveries/s | p50 ms | p99 ms | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        result = run_mode(mode, settings, delivery_body)  # type: ignore[arg-type]
        result["scenario"] = "delivery"
        if not args.no_write:
            RESULTS.mkdir(parents=True, exist_ok=True)
            suffix = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
            path = RESULTS / f"{result['date']}-delivery-{mode}{suffix}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"[{mode}] wrote {path} ({result['total_s']}s)", flush=True)
        rows += summary_rows(result)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
