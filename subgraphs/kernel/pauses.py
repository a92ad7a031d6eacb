"""How long this process stood still: garbage collections and a blocked event loop, as Prometheus histograms.

A subgraph is one thread with one event loop: while it collects garbage or runs a long piece of code
without awaiting, every request and live event in flight waits. Latency percentiles show that it happens;
these two metrics say which it was:
- `beep_gc_pause_seconds{generation}`: every collection, timed by `gc.callbacks` (kernel/heap.py sets the
  collector up so that the old generation stays small);
- `beep_event_loop_lag_seconds`: how late a 250-ms timer fires, sampled four times a second. A stall of a
  second or more is also logged (a warning with its length), so a slow minute can be found in the logs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from prometheus_client import Histogram

from subgraphs.kernel import metrics  # noqa: F401 (imported first, it turns off `*_created` series)

log = logging.getLogger("beep.pauses")

PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GC_PAUSES = Histogram(
    "beep_gc_pause_seconds",
    "Garbage collections of this process and how long each stopped it, by generation (0 youngest).",
    ["generation"],
    buckets=PAUSE_BUCKETS,
)
LOOP_LAG = Histogram(
    "beep_event_loop_lag_seconds",
    "How late the event loop ran a timer (sampled every 0.25 s): time it spent on something else.",
    buckets=PAUSE_BUCKETS,
)
SAMPLE_SECONDS = 0.25
LOGGED_STALL_SECONDS = 1.0

# Made here, not on a collection: prometheus_client makes a child under its parent's (non-reentrant) lock,
# and a collection that started while this thread held it (a scrape, a first observation) would wait on
# it for ever inside the callback.
_GC_PAUSES_BY_GENERATION = {generation: GC_PAUSES.labels(str(generation)) for generation in range(3)}
_started: dict[int, float] = {}  # generation -> perf_counter at its start (one collection at a time)


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    generation = info.get("generation", 0)
    if phase == "start":
        _started[generation] = time.perf_counter()
        return
    began = _started.pop(generation, None)
    paused = _GC_PAUSES_BY_GENERATION.get(generation)
    if began is not None and paused is not None:
        paused.observe(time.perf_counter() - began)


def time_collections() -> None:
    """Time every garbage collection from now on (once per process; repeated calls do nothing)."""
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


async def watch_loop(sample_seconds: float = SAMPLE_SECONDS) -> None:
    """Runs until cancelled: observes how late each `sample_seconds` sleep wakes up."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(sample_seconds)
        lag = max(time.perf_counter() - began - sample_seconds, 0.0)
        LOOP_LAG.observe(lag)
        if lag >= LOGGED_STALL_SECONDS:
            log.warning("event loop stalled", extra={"stall_ms": round(lag * 1000)})


def start() -> asyncio.Task[None]:
    """Both watches for a server process's lifetime; cancel the task when it stops."""
    time_collections()
    return asyncio.create_task(watch_loop(), name="beep-pauses")
