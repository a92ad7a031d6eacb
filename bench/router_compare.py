"""The router's share of a send, router against router: `python -m bench.router_compare`.

Full mode with durable PostgreSQL (bench.run's default), one stack, and next to
its routers A and B a few more routers in front of the same subgraphs, each a process of its own:

* `hive`: Hive Gateway as configured today (router/gateway.config.ts, `HIVE_ROUTER_RUNTIME=false`);
* `hive-rust`: the same gateway and plugins with the Rust query planner and executor
  (`HIVE_ROUTER_RUNTIME=true`; needs `npm install --no-save @graphql-hive/router-runtime` in router/);
* `hive-bare`: today's gateway with Beep's optional plugins and limits off and logging at warn;
* `cosmo`: WunderGraph Cosmo Router (Go), built by `bench/install-cosmo`; its execution config composed
  by `wgc router compose` from supergraph/subgraphs/*.graphql. It verifies the JWT against the same JWKS,
  forwards the caller's Authorization and sets the internal caller credential (`Beep-Internal`), as the
  gateway does; it has none of the gateway's plugins (cost limits, CORS, audit, metrics, fan-out);
* `direct`: no router, the messages subgraph itself (with the internal credential): the floor.

Each router is warmed, then driven in turn by a fixed-rate open loop of `sendMessage` with the selection a
client sends (tests/integration/flows.py), `--rounds` times, the order rotating each round so that every
router runs back to back with every other. Per run: the router's CPU per request from /proc (its process
tree), the stack's and the machine's, /proc/loadavg, latency p50/p99 and errors. Writes
bench/results/<date>-router-compare[-tag].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beep.router import ROUTER_DIR, wait_ready
from bench.delivery import DeliverySettings, loadavg, refresh_tokens, seed_delivery, send_open_loop
from bench.load import Gql, latency_summary, pooled_client
from bench.procs import CpuMeter
from bench.run import RESULTS, Runner, run_mode
from tests.harness import stack as stack_module
from tests.harness.ports import free_port
from tests.harness.stack import Stack

ROUTERS = ("hive", "hive-rust", "hive-bare", "cosmo", "direct")
# `hive-bare`: today's gateway with Beep's optional plugins and limits off (cost, depth, aliases, token
# limit, metrics, fan-out) and logging at warn: what those settings cost per request.
BARE_ENV = {
    "BEEP_ROUTER_MAX_COST": "0",
    "BEEP_ROUTER_MAX_DEPTH": "0",
    "BEEP_ROUTER_MAX_ALIASES": "0",
    "BEEP_ROUTER_MAX_TOKENS": "0",
    "BEEP_ROUTER_METRICS_PORT": "0",
    "BEEP_FANOUT": "false",
    "BEEP_ROUTER_LOG_LEVEL": "warn",
}
CACHE = Path(os.environ.get("BEEP_CACHE", Path.home() / ".cache" / "beep"))
COSMO_VERSION = os.environ.get("COSMO_ROUTER_VERSION", "0.341.0")
WGC_VERSION = os.environ.get("WGC_VERSION", "0.112.7")
SUBGRAPH_SDL = ROUTER_DIR.parent / "supergraph" / "subgraphs"
NOT_STACK = ("bench-client",)


@dataclass
class CompareSettings:
    quick: bool
    rate: float
    seconds: float
    rounds: int
    routers: list[str]
    senders: int = 8
    max_inflight: int = 48
    warm: int = 150
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Router:
    name: str
    url: str
    pid: int | None  # None: no router process (direct)
    headers: dict[str, str] = field(default_factory=dict)


def rust_runtime_version() -> str | None:
    package = ROUTER_DIR / "node_modules" / "@graphql-hive" / "router-runtime" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else None


def cosmo_paths() -> tuple[Path, Path]:
    return (
        CACHE / "bin" / f"cosmo-router-{COSMO_VERSION}",
        CACHE / f"wgc-{WGC_VERSION}" / "node_modules" / "wgc" / "dist" / "src" / "index.js",
    )


def start_hive(stack: Stack, name: str, rust: bool, extra: dict[str, str] | None = None) -> Router:
    env = stack.router_envs["router-a"]
    url = stack.start_router(
        name,
        stack.subgraph_urls,
        env["BEEP_JWKS_URL"],
        env["BEEP_JWT_ISSUER"],
        extra_env={"HIVE_ROUTER_RUNTIME": "true" if rust else "false", **(extra or {})},
    )
    pid = next(p.pid for n, p in stack.processes if n == name)
    return Router(name, url, pid)


def start_cosmo(stack: Stack) -> Router:
    """Composes the execution config with wgc and starts Cosmo Router on a free port."""
    binary, wgc = cosmo_paths()
    if not binary.exists() or not wgc.exists():
        raise SystemExit("Cosmo Router is not installed: run bench/install-cosmo (or leave `cosmo` out)")
    workdir = stack.workdir / "cosmo"
    workdir.mkdir(exist_ok=True)
    lines = ["version: 1", "subgraphs:"]
    for name, url in stack.subgraph_urls.items():
        # Cosmo's composition refuses a @listSize with both assumedSize and slicingArguments whose argument
        # has a default (Query.notifications, Query.searchUsers); the copy drops assumedSize there. The
        # router does not enforce @listSize unless its cost control is configured (not here).
        sdl = re.sub(
            r"@listSize\(assumedSize: \d+, (slicingArguments)",
            r"@listSize(\1",
            (SUBGRAPH_SDL / f"{name}.graphql").read_text(),
        )
        (workdir / f"{name}.graphql").write_text(sdl)
        lines += [
            f"  - name: {name}",
            f"    routing_url: {url}",
            "    schema:",
            f"      file: {name}.graphql",
        ]
    (workdir / "compose.yaml").write_text("\n".join(lines) + "\n")
    composed = subprocess.run(
        ["node", str(wgc), "router", "compose", "-i", "compose.yaml", "-o", "config.json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=os.environ | {"DO_NOT_TRACK": "1", "COSMO_TELEMETRY_DISABLED": "1"},
    )
    if composed.returncode != 0:
        raise RuntimeError(f"wgc router compose failed: {composed.stdout[-2000:]}{composed.stderr[-2000:]}")
    env_a = stack.router_envs["router-a"]
    port = free_port()
    internal = stack.internal_headers
    config = {  # JSON is YAML
        "listen_addr": f"127.0.0.1:{port}",
        "log_level": "warn",
        "json_log": True,
        "graphql_path": "/graphql",
        "execution_config": {"file": {"path": str(workdir / "config.json"), "watch": False}},
        "telemetry": {
            "tracing": {"enabled": False},
            "metrics": {"otlp": {"enabled": False}, "prometheus": {"enabled": False}},
        },
        "graphql_metrics": {"enabled": False},
        "authentication": {
            "jwt": {"jwks": [{"url": env_a["BEEP_JWKS_URL"], "audiences": [env_a["BEEP_JWT_AUDIENCE"]]}]}
        },
        "headers": {
            "all": {
                "request": [
                    {"op": "propagate", "named": "Authorization"},
                    {"op": "propagate", "named": "Accept-Language"},
                    {"op": "set", "name": "graphql-require-preflight", "value": "true"},
                    *({"op": "set", "name": k, "value": v} for k, v in internal.items()),
                ]
            }
        },
    }
    (workdir / "config.yaml").write_text(json.dumps(config, indent=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_API_TOKEN", "CONTROLPLANE"))}
    env |= {"CONFIG_PATH": str(workdir / "config.yaml"), "GOMAXPROCS": str(os.cpu_count() or 2)}
    process = stack.spawn("cosmo", [str(binary), "-config", str(workdir / "config.yaml")], env=env)
    wait_ready(f"http://127.0.0.1:{port}/health/ready", timeout=240, process=process)
    return Router("cosmo", f"http://127.0.0.1:{port}/graphql", process.pid)


def start_routers(stack: Stack, names: list[str], failed: dict[str, str]) -> list[Router]:
    """The routers that started; a router that failed to start is named in `failed` with its reason (the
    others are still compared)."""
    routers = []
    for name in names:
        try:
            routers.append(start_router(stack, name))
        except (RuntimeError, TimeoutError, OSError) as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"[:2000]
            log = stack.workdir / f"{name}.log"
            if log.exists():
                failed[name] += " | log: " + log.read_text(errors="replace")[-1500:]
            print(f"  {name} did not start: {failed[name]}", flush=True)
    return routers


def start_router(stack: Stack, name: str) -> Router:
    if name == "hive":
        return start_hive(stack, "hive", rust=False)
    if name == "hive-rust":
        if rust_runtime_version() is None:
            raise SystemExit(
                "hive-rust needs @graphql-hive/router-runtime: "
                "(cd router && npm install --no-save @graphql-hive/router-runtime)"
            )
        return start_hive(stack, "hive-rust", rust=True)
    if name == "hive-bare":
        return start_hive(stack, "hive-bare", rust=False, extra=BARE_ENV)
    if name == "cosmo":
        return start_cosmo(stack)
    if name == "direct":
        return Router("direct", stack.subgraph_urls["messages"], None, stack.internal_headers)
    raise SystemExit(f"unknown router {name!r}; one of {', '.join(ROUTERS)}")


def other_processes_cpu(exclude: set[int], top: int = 6) -> dict[str, float]:
    """CPU seconds so far of the machine's other process groups (by command name), to say who else ran."""
    out: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        rest = raw[raw.rfind(")") + 2 :].split()
        out[comm] = out.get(comm, 0.0) + (int(rest[11]) + int(rest[12])) / ticks
    return out


def stack_pids(stack: Stack) -> set[int]:
    pids = {os.getpid()}
    cpu_children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                raw = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(raw[raw.rfind(")") + 2 :].split()[1])
            cpu_children.setdefault(ppid, []).append(int(entry.name))
    todo = [p.pid for _, p in stack.processes] + [os.getpid()]
    while todo:
        pid = todo.pop()
        pids.add(pid)
        todo.extend(cpu_children.get(pid, []))
    return pids


def others_delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    deltas = {k: (after[k] - before.get(k, 0.0)) / seconds for k in after}
    return {k: round(v, 3) for k, v in sorted(deltas.items(), key=lambda kv: -kv[1])[:6] if v >= 0.01}


async def compare_body(stack: Stack, settings: CompareSettings) -> dict[str, Any]:
    delivery = DeliverySettings.make(False, [1], "flows")
    delivery.senders = settings.senders
    delivery.listener_users = 1
    failed: dict[str, str] = {}
    routers = start_routers(stack, settings.routers, failed)
    meter = Runner(stack, delivery).meter  # type: ignore[arg-type]  # every stack process, these routers too
    async with pooled_client(settings.max_inflight + 8, keepalive_expiry=2.0) as http:
        seed = await seed_delivery(Gql(http, stack.router_url), delivery)
        accounts = [*seed.senders, *seed.listeners]
        gqls = {r.name: Gql(http, r.url, r.headers) for r in routers}
        warm_errors: dict[str, list[str]] = {}
        for router in routers:
            tokens = [a.token for a in seed.senders]
            warm = await send_open_loop(
                gqls[router.name], tokens, seed.channel_id, f"warm-{router.name}", 50, settings.warm, 30, 16
            )
            warm_errors[router.name] = warm.errors[:3]
        runs: list[dict[str, Any]] = []
        names = [r.name for r in routers]
        for round_no in range(settings.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                router = next(r for r in routers if r.name == name)
                await refresh_tokens(Gql(http, stack.router_url), accounts, older_than_s=300.0)
                tokens = [a.token for a in seed.senders]
                await asyncio.sleep(1.0)  # the previous run's stragglers (worker, relay) settle
                exclude = stack_pids(stack)
                others_before = other_processes_cpu(exclude)
                load_before = loadavg()
                before = meter.snapshot()
                count = round(settings.rate * settings.seconds)
                sent = await send_open_loop(
                    gqls[name], tokens, seed.channel_id, f"{name}-{round_no}", settings.rate, count,
                    settings.seconds * 2, settings.max_inflight,
                )  # fmt: skip
                after = meter.snapshot()
                usage = CpuMeter.usage(before, after)
                cores: dict[str, float] = usage["cores_by_process"]  # type: ignore[assignment]
                window: float = usage["window_s"]  # type: ignore[assignment]
                ok = max(len(sent.sent_at), 1)
                per_request = {k: round(v * window / ok * 1000, 3) for k, v in cores.items()}
                stack_ms = sum(v for k, v in per_request.items() if k not in NOT_STACK)
                run: dict[str, Any] = {
                    "router": name,
                    "round": round_no,
                    "ok": len(sent.sent_at),
                    "errors": len(sent.errors),
                    "error_samples": sent.errors[:3],
                    "late_issues": sent.late_issues,
                    "achieved_rate_per_s": round(len(sent.sent_at) / max(sent.total_s, 1e-9), 2),
                    "latency_ms": latency_summary(sent.send_ms),
                    "router_cpu_ms_per_request": per_request.get(name) if router.pid else 0.0,
                    "stack_cpu_ms_per_request": round(stack_ms, 2),
                    "cpu_ms_per_request": dict(sorted(per_request.items(), key=lambda kv: -kv[1])),
                    "machine_busy_cores": usage["machine_busy_cores"],
                    "other_processes_cores": usage["other_processes_cores"],
                    "other_processes_top_cores": others_delta(
                        others_before, other_processes_cpu(exclude), window
                    ),
                    "loadavg_before": load_before,
                    "loadavg_after": loadavg(),
                    "send_ms": [round(v, 2) for v in sent.send_ms],
                }
                runs.append(run)
                print(
                    f"  round {round_no} {name:9s} router {run['router_cpu_ms_per_request']:6.2f} ms/req, "
                    f"stack {stack_ms:6.2f}, p50 {run['latency_ms'].get('p50_ms', 0):6.1f} ms, "
                    f"p99 {run['latency_ms'].get('p99_ms', 0):6.1f} ms, errors {len(sent.errors)}, "
                    f"others {usage['other_processes_cores']} cores, load {load_before}",
                    flush=True,
                )
    return {
        "routers_that_failed_to_start": failed,
        "warm_up_errors": warm_errors,
        "runs": runs,
        "summary": summarise(runs, names),
    }


def summarise(runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for r in runs if r["router"] == name]
        all_ms = [v for r in mine for v in r["send_ms"]]
        router_ms = [r["router_cpu_ms_per_request"] for r in mine]
        out[name] = {
            "runs": len(mine),
            "requests_ok": sum(r["ok"] for r in mine),
            "errors": sum(r["errors"] for r in mine),
            "router_cpu_ms_per_request_median": round(statistics.median(router_ms), 2),
            "router_cpu_ms_per_request_runs": router_ms,
            "stack_cpu_ms_per_request_median": round(
                statistics.median(r["stack_cpu_ms_per_request"] for r in mine), 2
            ),
            "latency_ms": latency_summary(all_ms),
            "other_processes_cores_median": round(
                statistics.median(r["other_processes_cores"] for r in mine), 2
            ),
        }
    return out


def patient_start() -> None:
    """Up to 4 minutes (not 1) for each stack process to answer its health check: on this shared 2-core
    machine, other sessions' test stacks kept the load average above 20 and nine Python processes
    importing at once missed the harness's minute."""
    original = stack_module.wait_ready

    def patient(url: str, *, timeout: float = 60.0, process: Any = None) -> None:
        original(url, timeout=max(timeout, 240.0), process=process)

    stack_module.wait_ready = patient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router_compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rate", type=float, default=30.0, help="sendMessage/s offered (open loop)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--routers", default="hive,hive-rust,hive-bare,cosmo,direct", help=f"from {','.join(ROUTERS)}"
    )
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.routers.split(",") if n.strip()]
    versions = {"hive_router_runtime": rust_runtime_version() or "", "cosmo_router": "", "wgc": ""}
    if "cosmo" in names:
        binary, wgc = cosmo_paths()
        versions |= {
            "cosmo_router": COSMO_VERSION if binary.exists() else "",
            "wgc": WGC_VERSION if wgc.exists() else "",
        }
    settings = CompareSettings(False, args.rate, args.seconds, args.rounds, names, versions=versions)
    patient_start()
    os.environ.pop("HIVE_ROUTER_RUNTIME", None)  # each router gets its own value
    began = time.time()
    for attempt in range(1, 4):
        try:
            result = run_mode("full", settings, compare_body)  # type: ignore[arg-type]
            break
        except TimeoutError as exc:  # a subgraph slow to start on a saturated shared machine
            if attempt == 3:
                raise
            print(f"the stack did not start ({exc}); attempt {attempt + 1} in 20 s", flush=True)
            time.sleep(20)
    result["scenario"] = "router-compare"
    result["settings"] = asdict(settings)
    result["wall_s"] = round(time.time() - began, 1)
    for run in result["runs"]:
        run.pop("send_ms")  # in the summary's percentiles; the raw list only bloats the file
    text = json.dumps(result, indent=2) + "\n"
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{result['date']}-router-compare{'-' + args.tag if args.tag else ''}.json"
        path.write_text(text)
        print(f"wrote {path}", flush=True)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
