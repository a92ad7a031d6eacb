"""Placement spike (issue 14): `python -m bench.placement [--subscribers 500] [--rate 10] [--runs 3]`.

Where should the fan-out tier run: inside the gateway (router/fanout.ts, a plugin) or as a Python service
beside it (bench/fanout_spike.py)? One full-mode stack, one seeding, then the same fixed step run against
each placement in turn (gateway, python, gateway, python, ...): N sockets (bench/listeners.mjs) on one
channel with `flows.py`'s subscription, alternating between two tier instances (routers A and B, or
spikes A and B, each in front of its own messages replica), and `rate` msg/s offered open loop for
`seconds` (bench/delivery.py's step: CPU per process from /proc, send -> receive latency, lost and
duplicated deliveries). Around each step: `uptime`'s load averages and the processes outside this
benchmark that used the most CPU (other sessions share the machine). Writes
bench/results/<date>-placement-full[-<tag>].json. See bench/README.md, "Placement spike".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.delivery import STACK_ROLES, DeliveryRun, DeliverySettings, refresh_tokens, seed_delivery
from bench.live import NodeReceiver, Subscriber, SubscriberLog
from bench.load import Gql, latency_summary, pooled_client
from bench.procs import ROOT, _process_table
from bench.run import RESULTS, run_mode
from tests.harness.stack import Stack
from tests.integration.flows import MESSAGE_EVENTS

PORTS = range(30500, 30600)  # the spike's own ports: ad-hoc processes on this shared machine use these


@dataclasses.dataclass
class Spike:
    name: str
    url: str
    process: asyncio.subprocess.Process


class KeepingReceiver(NodeReceiver):
    """bench/listeners.mjs, keeping the last step's per-socket arrivals for `fanout_spread`."""

    logs: list[SubscriberLog] | None = None

    async def finish(
        self, sent: int, drain_s: float, per_channel: dict[str, int] | None = None
    ) -> list[SubscriberLog]:
        self.logs = await super().finish(sent, drain_s, per_channel)
        return self.logs


def fanout_spread(logs: list[SubscriberLog]) -> dict[str, float | int]:
    """Per message and tier instance: the last socket's arrival minus the first one's. Unlike send ->
    receive, it leaves out the send path (which the machine's load stretches to seconds here) and measures
    the tier's own write-out to its sockets (with the receiver's reading)."""
    arrivals: dict[tuple[str, int], list[float]] = {}
    for log in logs:
        for seq, at in log.received:
            arrivals.setdefault((log.url, seq), []).append(at)
    return latency_summary([max(v) - min(v) for v in arrivals.values() if len(v) > 1])


def free_spike_port(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


async def start_spikes(stack: Stack) -> list[Spike]:
    """One spike per router, in front of the messages replica that router uses (A: messages, B: -2)."""
    issuer = stack.env["BEEP_ISSUER_URL"]
    spikes: list[Spike] = []
    taken: set[int] = set()
    for name, replica in (("spike-a", "messages"), ("spike-b", "messages-2")):
        port = free_spike_port(taken)
        taken.add(port)
        upstream = stack.subgraph_ports[replica]
        stderr = (stack.workdir / f"{name}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fanout_spike", "--port", str(port),
            "--upstream", f"ws://127.0.0.1:{upstream}/graphql",
            "--live-access", f"http://127.0.0.1:{upstream}/internal/live-access",
            "--issuer", issuer, "--jwks", f"{issuer}/.well-known/jwks.json",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT,
        )  # fmt: skip
        stderr.close()
        spikes.append(Spike(name, f"http://127.0.0.1:{port}/graphql", process))
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(stack.env["BEEP_INTERNAL_SECRET"].encode() + b"\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"{name} did not start: see {stack.workdir / f'{name}.log'}")
    return spikes


async def stop_spikes(spikes: list[Spike]) -> None:
    for spike in spikes:
        if spike.process.returncode is None:
            spike.process.terminate()
    for spike in spikes:
        try:
            await asyncio.wait_for(spike.process.wait(), 10)
        except TimeoutError:
            spike.process.kill()
            await spike.process.wait()


def _names() -> dict[int, str]:
    names = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                names[int(entry.name)] = Path(entry.path, "comm").read_text().strip()
            except OSError:
                continue
    return names


def other_processes(
    before: dict[int, float], window_s: float, roots: list[int], top: int = 5
) -> list[dict[str, Any]]:
    """The processes outside this benchmark (its own tree and the trees of `roots`, the metered stack
    processes: PostgreSQL may not be a descendant) that used the most CPU since `before`: who else was
    busy on the machine."""
    after, children = _process_table()
    ours, stack = set(), [os.getpid(), *roots]
    while stack:
        pid = stack.pop()
        ours.add(pid)
        stack.extend(children.get(pid, []))
    names = _names()
    used = [(after[pid] - before.get(pid, 0.0), pid) for pid in after if pid not in ours and pid in names]
    return [
        {"pid": pid, "comm": names[pid], "cores": round(cpu / window_s, 3)}
        for cpu, pid in sorted(used, reverse=True)[:top]
        if cpu > 0
    ]


def tier_summary(step: dict[str, Any]) -> dict[str, Any]:
    """CPU ms per delivery: the routers, the spikes, and the whole stack (everything but the benchmark
    client and the receiver), with send -> receive latency."""
    # From the cores, not step's cpu_ms_per_delivery: that one is rounded to 0.01 ms, the size of the
    # difference measured here.
    cores: dict[str, float] = step["cpu"]["cores_by_process"]
    delivered = max(step["delivered"], 1)
    per = {k: v * step["cpu"]["window_s"] / delivered * 1000 for k, v in cores.items()}
    latency = step["send_to_receive"]
    return {
        "routers_ms": round(sum(v for k, v in per.items() if k.startswith("router")), 4),
        "spikes_ms": round(sum(v for k, v in per.items() if k.startswith("spike")), 4),
        "messages_ms": round(sum(v for k, v in per.items() if k.startswith("messages")), 4),
        "stack_ms": round(sum(v for k, v in per.items() if k not in STACK_ROLES), 4),
        "receiver_ms": round(per.get("listeners-node", 0.0), 4),
        "p50_ms": latency.get("p50_ms"),
        "p99_ms": latency.get("p99_ms"),
        "delivered": step["delivered"],
        "expected": step["expected_deliveries"],
        "lost": step["lost"],
        "duplicates": step["duplicates"],
        "achieved_send_rate_per_s": step["achieved_send_rate_per_s"],
        "other_processes_cores": step["cpu"]["other_processes_cores"],
        "loadavg_before": step["loadavg_before"],
    }


async def placement_body(
    stack: Stack, settings: DeliverySettings, options: argparse.Namespace
) -> dict[str, Any]:
    n, rate = options.subscribers, options.rate
    async with pooled_client(settings.max_inflight + 8, keepalive_expiry=2.0) as http:
        gql = Gql(http, stack.router_url)
        seed = await seed_delivery(gql, settings)
        run = DeliveryRun(stack, settings, gql, seed.channel_id)
        spikes = await start_spikes(stack)
        for spike in spikes:
            run.meter.add(spike.name, spike.process.pid)  # idle while the gateway placement runs
        routers = [u for u in (stack.router_url, stack.second_router_url) if u]
        urls = {"gateway": routers, "python": [s.url for s in spikes]}
        runs: list[dict[str, Any]] = []
        try:
            for k in range(options.runs):
                for placement in ("gateway", "python"):
                    runs.append(await one_run(run, seed, gql, placement, urls[placement], k, options))
        finally:
            await stop_spikes(spikes)
    summary: dict[str, Any] = {}
    for placement in ("gateway", "python"):
        rows = [r["summary"] for r in runs if r["placement"] == placement and "summary" in r]
        summary[placement] = {
            key: round(statistics.median(values), 4)
            for key in (
                *("routers_ms", "spikes_ms", "messages_ms", "stack_ms"),
                *("p50_ms", "p99_ms", "spread_p50_ms", "spread_p99_ms"),
            )
            if (values := [r[key] for r in rows if r.get(key) is not None])
        } | {
            "runs": len(rows),
            "lost": sum(r["lost"] for r in rows),
            "duplicates": sum(r["duplicates"] for r in rows),
        }
    return {
        "placement": {"subscribers": n, "rate_per_s": rate, "seconds": options.seconds, "runs": options.runs},
        "subscription": MESSAGE_EVENTS,
        "summary_medians": summary,
        "runs": runs,
    }


async def one_run(
    run: DeliveryRun,
    seed: Any,
    gql: Gql,
    placement: str,
    urls: list[str],
    k: int,
    options: argparse.Namespace,
) -> dict[str, Any]:
    n, s = options.subscribers, run.s
    await refresh_tokens(gql, [*seed.senders, *seed.listeners], older_than_s=60.0)
    senders = [a.token for a in seed.senders]
    subscribers = [
        Subscriber(urls[i % len(urls)], seed.listeners[i % len(seed.listeners)].token) for i in range(n)
    ]
    log = run.stack.workdir / f"listeners-{placement}-{k}.log"
    receiver = KeepingReceiver(subscribers, MESSAGE_EVENTS, seed.channel_id, "unused ", log)
    out: dict[str, Any] = {"placement": placement, "run": k, "urls": urls}
    try:
        await receiver.start(s.drain_s)
        assert receiver.pid is not None
        run.meter.add("listeners-node", receiver.pid)
        out["primed"] = await run.prime(receiver, senders[0], n, out)
        before, _ = _process_table()
        began = asyncio.get_running_loop().time()
        count = round(options.rate * options.seconds)
        step = await run.step(receiver, senders, n, options.rate, count, s.drain_s, f"{placement}{k}")
        window = asyncio.get_running_loop().time() - began
        roots = [pid for pid, _tree in run.meter.groups.values()]
        out["other_processes_top"] = other_processes(before, window, roots)
        out["step"] = step
        out["summary"] = tier_summary(step)
        spread = fanout_spread(receiver.logs or [])
        out["summary"] |= {"spread_p50_ms": spread.get("p50_ms"), "spread_p99_ms": spread.get("p99_ms")}
        print(f"  {placement} run {k}: {json.dumps(out['summary'])}", flush=True)
        print(f"    busiest other processes: {out['other_processes_top']}", flush=True)
    finally:
        await receiver.close()
        run.meter.remove("listeners-node")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.placement", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="offered messages/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="offered duration of each step")
    parser.add_argument("--runs", type=int, default=3, help="runs per placement, interleaved")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not NodeReceiver.available():
        raise SystemExit("needs graphql-ws and ws in router/node_modules")
    settings = DeliverySettings.make(False, [args.subscribers], "flows")
    settings = dataclasses.replace(settings, idle_wait_s=30.0)

    async def body(stack: Stack, settings: Any) -> dict[str, Any]:
        return await placement_body(stack, settings, args)

    result = run_mode("full", settings, body)
    result["scenario"] = "placement"
    print(json.dumps(result["summary_medians"], indent=2))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{result['date']}-placement-full{f'-{args.tag}' if args.tag else ''}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
