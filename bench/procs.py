"""CPU accounting from /proc (no psutil) and the facts about the machine a result was measured on."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from beep.router import router_node

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> tuple[dict[int, float], dict[int, list[int]]]:
    """CPU seconds (user + system) of every process, and each process's children."""
    cpu: dict[int, float] = {}
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        rest = raw[raw.rfind(")") + 2 :].split()
        pid, ppid = int(entry.name), int(rest[1])
        cpu[pid] = (int(rest[11]) + int(rest[12])) / CLOCK_TICKS
        children.setdefault(ppid, []).append(pid)
    return cpu, children


def _tree_cpu(root: int, cpu: dict[int, float], children: dict[int, list[int]]) -> float:
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def rss_kib(pid: int, *, descendants: bool = True) -> int:
    """Resident memory of a process and (unless told not to) its descendants, e.g. PostgreSQL's backends, in
    KiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        if descendants:
            pending += [int(c) for c in children]
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / CLOCK_TICKS


@dataclass
class CpuSnapshot:
    wall: float
    machine_busy: float
    groups: dict[str, float]


@dataclass
class CpuMeter:
    """Named process groups. `tree=True` counts the process and all its descendants (e.g. PostgreSQL
    backends); the benchmark's own process is counted alone (its descendants are the stack)."""

    groups: dict[str, tuple[int, bool]] = field(default_factory=dict)

    def add(self, name: str, pid: int, *, tree: bool = True) -> None:
        self.groups[name] = (pid, tree)

    def remove(self, name: str) -> None:
        self.groups.pop(name, None)

    def snapshot(self) -> CpuSnapshot:
        cpu, children = _process_table()
        values = {
            name: _tree_cpu(pid, cpu, children) if tree else cpu.get(pid, 0.0)
            for name, (pid, tree) in self.groups.items()
        }
        return CpuSnapshot(time.monotonic(), _machine_busy(), values)

    @staticmethod
    def usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
        """Cores used on average between two snapshots, per group, for the machine, and by everything else
        (other processes on this shared VM)."""
        wall = max(after.wall - before.wall, 1e-9)
        per_group = {
            name: round((after.groups[name] - before.groups.get(name, 0.0)) / wall, 3)
            for name in after.groups
            if name in before.groups
        }
        machine = (after.machine_busy - before.machine_busy) / wall
        return {
            "window_s": round(wall, 2),
            "cores_by_process": per_group,
            "machine_busy_cores": round(machine, 3),
            "other_processes_cores": round(max(machine - sum(per_group.values()), 0.0), 3),
        }


async def wait_for_quiet(
    max_wait_s: float, threshold_cores: float = 0.5, window_s: float = 1.5
) -> dict[str, float]:
    """This VM is shared: wait (bounded) until other work uses at most `threshold_cores`, and say how busy it
    was. The stack itself is idle between scenarios."""
    waited = 0.0
    while True:
        before = _machine_busy()
        await asyncio.sleep(window_s)
        busy = (_machine_busy() - before) / window_s
        if busy <= threshold_cores or waited >= max_wait_s:
            return {"background_cores": round(busy, 2), "waited_s": waited}
        waited += window_s


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT).stdout.rstrip()
    except OSError:
        return ""


def machine_facts() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), ""
    )
    meminfo = {
        ln.split(":")[0]: ln.split(":")[1].strip() for ln in Path("/proc/meminfo").read_text().splitlines()
    }
    mem_kib = int(meminfo["MemTotal"].split()[0])
    gateway_pkg = ROOT / "router" / "node_modules" / "@graphql-hive" / "gateway" / "package.json"
    gateway_version = ""
    if gateway_pkg.exists():
        import json

        gateway_version = json.loads(gateway_pkg.read_text()).get("version", "")
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        # The router and the bench's Node load tools run on the Node router/package.json pins.
        "node": _run([router_node(), "--version"]),
        "node_system": _run(["node", "--version"]),
        "hive_gateway": gateway_version,
        "strawberry": version("strawberry-graphql"),
        "git_commit": _run(["git", "rev-parse", "HEAD"]),
        # The working tree is shared with other work in progress: say exactly what was measured.
        "git_uncommitted": [
            ln for ln in _run(["git", "status", "--porcelain"]).splitlines() if "bench/" not in ln
        ][:60],
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def postgres_version() -> str:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return _run([str(candidates[0]), "--version"]) if candidates else ""


def redis_version() -> str:
    return _run(["redis-server", "--version"])
