"""Where a send's CPU goes: `python -m bench.profile_send [--rate 30] [--seconds 40]`.

Full mode (durable PostgreSQL), one listener on the delivery benchmark's subscription, 8 senders sending
open loop at `--rate` msg/s for `--seconds`. Meanwhile py-spy samples every Python process of the stack
(non-blocking, so the profile does not slow what it measures) and /proc gives each process's CPU per
message. Prints and writes bench/results/<date>-profile-send[-tag].json: CPU ms per message per process, and
per Python process the frames with the most samples, both self time and inclusive (Beep's own code only for
the inclusive list). The last run's folded stacks stay in ~/.cache/beep/profiles for flame graphs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.delivery import DeliveryRun, DeliverySettings, refresh_tokens, seed_delivery, send_open_loop
from bench.live import NodeReceiver, Subscriber, analyse
from bench.load import Gql, latency_summary, pooled_client
from bench.procs import CpuMeter
from bench.run import RESULTS, run_mode
from tests.harness.stack import Stack
from tests.integration.flows import MESSAGE_EVENTS

OWN_CODE = ("subgraphs/", "db/", "media/", "beep/")
PROFILES = Path.home() / ".cache" / "beep" / "profiles"  # the last run's folded stacks (flame graphs)


@dataclass
class ProfileSettings:
    quick: bool
    rate: float
    seconds: float
    sample_rate: int
    senders: int = 8
    max_inflight: int = 48


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: scripts/bootstrap --dev installs it")
    return found


def summarise(folded: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares from py-spy's folded output ("frame;frame;frame count")."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            if any(marker in frame for marker in OWN_CODE):
                inclusive[frame] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[frame, round(100 * n / total, 1)] for frame, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(own), "own_code_inclusive_pct": share(inclusive)}


async def profile_body(stack: Stack, settings: ProfileSettings) -> dict[str, Any]:
    delivery = DeliverySettings.make(False, [1], "flows")
    delivery.senders = settings.senders
    delivery.listener_users = 1
    async with pooled_client(settings.max_inflight + 8, keepalive_expiry=2.0) as http:
        gql = Gql(http, stack.router_url)
        seed = await seed_delivery(gql, delivery)
        run = DeliveryRun(stack, delivery, gql, seed.channel_id)
        receiver = NodeReceiver(
            [Subscriber(stack.router_url, seed.listeners[0].token)],
            MESSAGE_EVENTS,
            seed.channel_id,
            "unused ",
            stack.workdir / "listeners-profile.log",
        )
        await receiver.start(20.0)
        try:
            senders = [a.token for a in seed.senders]
            warm = await send_open_loop(gql, senders, seed.channel_id, "warm", 10, 100, 30, 16)
            if not await receiver.wait_primed(20.0):
                raise RuntimeError("the listener received nothing from the warm-up")
            await run.wait_stack_idle(30.0)
            await refresh_tokens(gql, [*seed.senders, *seed.listeners], older_than_s=60.0)
            senders = [a.token for a in seed.senders]
            prefix = "profiled"
            await receiver.step(prefix)
            samplers = start_samplers(stack, settings)
            router_pid = next(p.pid for name, p in stack.processes if name == "router-a")
            router = asyncio.create_task(node_profile(router_pid, settings.seconds))
            before = run.meter.snapshot()
            count = round(settings.rate * settings.seconds)
            sent = await send_open_loop(
                gql, senders, seed.channel_id, prefix, settings.rate, count, settings.seconds * 2, 48
            )
            cpu = CpuMeter.usage(before, run.meter.snapshot())
            logs = await receiver.finish(len(sent.sent_at), 20.0)
            profiles = finish_samplers(samplers)
            profiles["router-a"] = await router
        finally:
            await receiver.close()
    cores: dict[str, float] = cpu["cores_by_process"]  # type: ignore[assignment]
    window: float = cpu["window_s"]  # type: ignore[assignment]
    per_message = {k: round(v * window / max(len(sent.sent_at), 1) * 1000, 2) for k, v in cores.items()}
    stack_total = sum(v for k, v in per_message.items() if k not in ("bench-client",))
    return {
        "warm_up_errors": len(warm.errors),
        "messages_sent": len(sent.sent_at),
        "send_errors": len(sent.errors),
        "send_error_samples": sent.errors[:3],
        "achieved_send_rate_per_s": round(len(sent.sent_at) / max(sent.total_s, 1e-9), 2),
        "send_mutation_latency": latency_summary(sent.send_ms),
        **analyse(sent.sent_at, logs),
        "cpu": cpu,
        "cpu_ms_per_message": dict(sorted(per_message.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_message_stack_total": round(stack_total, 2),
        "profiles": profiles,
    }


async def node_profile(pid: int, seconds: float, top: int = 40) -> dict[str, Any]:
    """A CPU profile of a running Node process (the router) through its inspector: SIGUSR1 opens it on
    127.0.0.1:9229, the Chrome DevTools protocol's Profiler samples for `seconds`. Self time by function."""
    os.kill(pid, signal.SIGUSR1)
    for _ in range(50):
        try:
            async with httpx.AsyncClient() as client:
                targets = (await client.get("http://127.0.0.1:9229/json/list")).json()
            break
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
    else:
        return {"error": "the inspector did not open"}
    async with websockets.connect(
        targets[0]["webSocketDebuggerUrl"], max_size=None, ping_interval=None
    ) as ws:
        ids = iter(range(1, 100))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            ident = next(ids)
            await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == ident:
                    return reply.get("result", {})  # type: ignore[no-any-return]

        await call("Profiler.enable")
        await call("Profiler.setSamplingInterval", interval=500)
        await call("Profiler.start")
        await asyncio.sleep(seconds)
        profile = (await call("Profiler.stop"))["profile"]
    PROFILES.mkdir(parents=True, exist_ok=True)
    (PROFILES / "router-a.cpuprofile").write_text(json.dumps(profile))  # for DevTools or speedscope
    nodes = {n["id"]: n for n in profile["nodes"]}
    parents = {child: n["id"] for n in profile["nodes"] for child in n.get("children", [])}

    def label(node_id: int) -> str:
        frame = nodes[node_id]["callFrame"]
        where = frame["url"].rsplit("node_modules/", 1)[-1] or "(native)"
        return f"{frame['functionName'] or '(anonymous)'} {where}:{frame['lineNumber']}"

    hits: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()  # samples with the frame anywhere on the stack (busy ones only)
    for sample in profile.get("samples", []):
        hits[label(sample)] += 1
        if label(sample).startswith("(idle)"):
            continue
        on_stack, node_id = set(), sample
        while node_id is not None:
            on_stack.add(label(node_id))
            node_id = parents.get(node_id)
        inclusive.update(on_stack)
    total = sum(hits.values())
    by_package: Counter[str] = Counter()
    for frame, n in hits.items():
        where = frame.split(" ", 1)[1]
        package = "/".join(where.split("/")[:2]) if where.startswith("@") else where.split("/")[0]
        by_package[package.split(":")[0]] += n
    return {
        "samples": total,
        "self_pct": [[f, round(100 * n / total, 1)] for f, n in hits.most_common(top)],
        "self_pct_by_package": [[p, round(100 * n / total, 1)] for p, n in by_package.most_common(25)],
        "inclusive_pct": [[f, round(100 * n / total, 1)] for f, n in inclusive.most_common(top * 2)],
    }


@dataclass
class Sampler:
    name: str
    output: Path
    process: subprocess.Popen[bytes]


def start_samplers(stack: Stack, settings: ProfileSettings) -> list[Sampler]:
    shutil.rmtree(PROFILES, ignore_errors=True)
    PROFILES.mkdir(parents=True)
    samplers = []
    for name, process in stack.processes:
        if name.startswith("router"):
            continue  # Node: its CPU is in cpu_ms_per_message; py-spy reads Python only
        output = PROFILES / f"{name}.folded"
        command = [
            py_spy(), "record", "--pid", str(process.pid), "--subprocesses", "--nonblocking",
            "--rate", str(settings.sample_rate), "--duration", str(round(settings.seconds)),
            "--format", "raw", "--output", str(output),
        ]  # fmt: skip
        samplers.append(
            Sampler(
                name, output, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
        )
    return samplers


def finish_samplers(samplers: list[Sampler]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sampler in samplers:
        try:
            _, err = sampler.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            sampler.process.kill()
            _, err = sampler.process.communicate()
        if sampler.output.exists():
            out[sampler.name] = {"folded": str(sampler.output), **summarise(sampler.output)}
        else:
            out[sampler.name] = {"error": err.decode(errors="replace")[-500:]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_send", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="messages/s offered (open loop)")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--sample-rate", type=int, default=250, help="py-spy samples/s per process")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    settings = ProfileSettings(False, args.rate, args.seconds, args.sample_rate)
    py_spy()
    result = run_mode("full", settings, profile_body)  # type: ignore[arg-type]
    result["scenario"] = "profile-send"
    result["settings"] = asdict(settings)
    text = json.dumps(result, indent=2) + "\n"
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{result['date']}-profile-send{'-' + args.tag if args.tag else ''}.json"
        path.write_text(text)
        print(f"wrote {path}", flush=True)
    print(json.dumps({k: result[k] for k in ("cpu_ms_per_message", "cpu_ms_per_message_stack_total")}))
    for name, profile in result["profiles"].items():
        print(f"\n== {name} ({profile.get('samples')} samples)")
        for frame, pct in profile.get("own_code_inclusive_pct", profile.get("self_pct_by_package", []))[:15]:
            print(f"  {pct:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
