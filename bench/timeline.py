"""Second by second: which process was busy when the latency spiked, and what PostgreSQL was doing.

A run's p99 is made of a few slow seconds; the averages in the CPU table cannot say what those seconds had
in common. `CpuTimeline` samples every process group's CPU once a second during the sends (one /proc scan,
in the benchmark's own process); `postgres_events` reads the stack's PostgreSQL log for checkpoints and
autovacuum runs (bench/run.py asks PostgreSQL to log every autovacuum, in UTC);
`slowest_seconds` joins them with the deliveries' latency by second of send time. The method of session
20's diagnosis (bench/README.md, "The mixed load's tail"), kept in the benchmark.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.delivery import latency_by_window
from bench.procs import CpuMeter, CpuSnapshot, rss_kib
from tests.harness.scraped import Samples, moved, scrape, total

# '2026-12-06 10:59:12.345 UTC [1234] LOG:  automatic vacuum of table "beep_shards_a.s3.outbox": ...'
_PG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\w+) \[\d+\] LOG:\s+(.*)$")
_PG_EVENTS = (
    ("checkpoint starting", "checkpoint_start"),
    ("checkpoint complete", "checkpoint_done"),
    ("automatic vacuum of table", "autovacuum"),
    ("automatic analyze of table", "autoanalyze"),
)


class CpuTimeline:
    """Cores used per process group in each second (wall-clock stamped, to line up with send times)."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter
        self.rows: list[tuple[float, dict[str, float]]] = []  # (wall s at the second's end, cores)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self) -> None:
        previous: CpuSnapshot = self.meter.snapshot()
        while True:
            await asyncio.sleep(1.0 - (time.time() % 1.0))  # on the wall clock's seconds
            current = self.meter.snapshot()
            wall = max(current.wall - previous.wall, 1e-9)
            cores = {
                name: round((value - previous.groups.get(name, value)) / wall, 2)
                for name, value in current.groups.items()
            }
            cores["machine"] = round((current.machine_busy - previous.machine_busy) / wall, 2)
            self.rows.append((round(time.time()), cores))
            previous = current


def postgres_events(log: Path, since_wall_s: float) -> list[list[Any]]:
    """[seconds after `since_wall_s`, kind, the log line's message (shortened)] for checkpoints and
    autovacuum/analyze runs in a PostgreSQL log with the default `log_line_prefix` ('%m [%p] ')."""
    if not log.exists():
        return []
    events: list[list[Any]] = []
    for line in log.read_text(errors="replace").splitlines():
        match = _PG_LINE.match(line)
        if match is None:
            continue
        stamp, zone, message = match.groups()
        kind = next((k for text, k in _PG_EVENTS if message.startswith(text)), None)
        if kind is None or zone != "UTC":  # the bench sets log_timezone=UTC
            continue
        at = datetime.fromisoformat(f"{stamp}+00:00").timestamp()
        if at >= since_wall_s:
            events.append([round(at - since_wall_s, 1), kind, message[:160]])
    return events


def latency_by_second(timeline: list[tuple[float, float]], start_ms: float) -> dict[int, tuple[int, float]]:
    """Second of send time (from `start_ms`, wall ms) -> (deliveries, p99 ms): bench.delivery's windows
    of one second."""
    return {int(row[0]): (int(row[1]), row[3]) for row in latency_by_window(timeline, 1000.0, start_ms)}


def slowest_seconds(
    by_second: dict[int, tuple[int, float]],
    cpu: CpuTimeline,
    start_ms: float,
    events: list[list[Any]],
    count: int = 15,
) -> dict[str, Any]:
    """The `count` seconds with the highest p99, each with the CPU of the two seconds after it was sent
    (the work its sends waited behind) and the PostgreSQL events within 3 s; and the mean CPU row."""
    cpu_at = {int(wall - start_ms / 1000) - 1: cores for wall, cores in cpu.rows}  # second's start
    groups = sorted({name for _, cores in cpu.rows for name in cores})
    mean = {g: round(sum(c.get(g, 0.0) for _, c in cpu.rows) / max(len(cpu.rows), 1), 2) for g in groups}
    rows: list[dict[str, Any]] = []
    for second, (deliveries, p99) in sorted(by_second.items(), key=lambda kv: -kv[1][1])[:count]:
        near = [e for e in events if second - 3 <= e[0] <= second + 3]
        rows.append(
            {
                "second": second,
                "deliveries": deliveries,
                "p99_ms": p99,
                "cpu": [cpu_at.get(second + k, {}) for k in (0, 1)],
                "postgres": near,
            }
        )
    return {"mean_cores": mean, "slowest": rows}


def print_slowest(summary: dict[str, Any]) -> None:
    """The slowest seconds beside the mean: the groups far above their mean in those seconds stand out."""
    mean: dict[str, float] = summary["mean_cores"]
    names = [g for g in mean if mean[g] >= 0.02 or g == "machine"]
    print("  slowest seconds (cores per group in that second and the next; mean first):")
    print("    " + " ".join(f"{n[:10]:>10}" for n in ["second", "p99 ms", "send p99", *names]))
    print("    " + " ".join(f"{v:>10}" for v in ["mean", "", "", *(mean[n] for n in names)]))
    for row in summary["slowest"]:
        for k, cores in enumerate(row["cpu"]):
            head = [row["second"], row["p99_ms"], row.get("send_p99_ms", "")] if k == 0 else ["", "", ""]
            print("    " + " ".join(f"{v:>10}" for v in [*head, *(cores.get(n, "") for n in names)]))
        kinds: dict[str, int] = {}
        for event in row["postgres"]:
            kinds[event[1]] = kinds.get(event[1], 0) + 1
        if kinds:
            print("      postgres within 3 s: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()))


# The routers' own memory (prom-client's default Node metrics): a V8 heap that grows lazily shows as
# `total` rising with `used` flat; a leak as `used` rising.
ROUTER_MEMORY_SERIES = (
    "nodejs_heap_size_used_bytes",
    "nodejs_heap_size_total_bytes",
    "nodejs_external_memory_bytes",
    "process_resident_memory_bytes",
)


def scrape_metrics(ports: dict[str, int]) -> dict[str, Samples]:
    """Each process's /metrics, parsed (tests/harness/scraped.py): the Python processes' pauses (the
    product's own metrics, subgraphs/kernel/pauses.py) to be subtracted over the run, or the routers'
    memory. Read before and after the sends, not during them."""
    out: dict[str, Samples] = {}
    for name, port in ports.items():
        try:
            out[name] = scrape(f"http://127.0.0.1:{port}/metrics")[1]
        except Exception as error:  # a process that does not answer has nothing to report
            print(f"  {name}: /metrics not read ({error.__class__.__name__})")
    return out


def router_memory_mib(before: dict[str, Samples], after: dict[str, Samples]) -> dict[str, Any]:
    """Per router: each memory series in MiB, [before, after]."""
    return {
        router: {
            name: [
                round(total(before.get(router, {}), name) / 2**20, 1),
                round(total(samples, name) / 2**20, 1),
            ]
            for name in ROUTER_MEMORY_SERIES
        }
        for router, samples in after.items()
    }


def pauses_over_run(before: dict[str, Samples], after: dict[str, Samples]) -> dict[str, dict[str, float]]:
    """Per process: collections by generation (count, total ms, how many took over 100 ms) and the event
    loop's stalls (samples late by over 100 ms and over 1 s, the total lateness in ms), over the run."""
    summary: dict[str, dict[str, float]] = {}
    for name, samples in after.items():
        start = before.get(name, {})
        row: dict[str, float] = {}
        for generation in ("0", "1", "2"):
            count = moved(start, samples, "beep_gc_pause_seconds_count", generation=generation)
            row[f"gc{generation}_count"] = count
            row[f"gc{generation}_ms"] = round(
                moved(start, samples, "beep_gc_pause_seconds_sum", generation=generation) * 1000, 1
            )
            row[f"gc{generation}_over_100ms"] = count - moved(
                start, samples, "beep_gc_pause_seconds_bucket", generation=generation, le="0.1"
            )
        lag = "beep_event_loop_lag_seconds"
        late = moved(start, samples, f"{lag}_count")
        row["loop_late_over_100ms"] = late - moved(start, samples, f"{lag}_bucket", le="0.1")
        row["loop_late_over_1s"] = late - moved(start, samples, f"{lag}_bucket", le="1.0")
        row["loop_lateness_ms"] = round(moved(start, samples, f"{lag}_sum") * 1000)
        summary[name] = row
    return summary


def resident_mib(meter: CpuMeter) -> dict[str, float]:
    """Each group's root process's resident memory (MiB): a heap that keeps growing under a steady load is a
    leak (PostgreSQL's root is its postmaster: its backends are not in it)."""
    kib = {name: rss_kib(pid, descendants=False) for name, (pid, _tree) in meter.groups.items()}
    return {name: round(value / 1024, 1) for name, value in kib.items() if value}
