"""kernel/pauses.py: garbage collections and a blocked event loop show in the process's metrics."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from prometheus_client import REGISTRY

from subgraphs.kernel import pauses


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_every_collection_is_timed_by_generation() -> None:
    pauses.time_collections()
    pauses.time_collections()  # once: a second call adds no second callback
    assert gc.callbacks.count(pauses._on_collection) == 1
    old = _sample("beep_gc_pause_seconds_count", {"generation": "2"})
    young = _sample("beep_gc_pause_seconds_count", {"generation": "0"})
    gc.collect()
    gc.collect(0)
    assert _sample("beep_gc_pause_seconds_count", {"generation": "2"}) == old + 1
    assert _sample("beep_gc_pause_seconds_count", {"generation": "0"}) >= young + 1


async def test_a_blocked_loop_is_measured_and_a_long_stall_logged(caplog: pytest.LogCaptureFixture) -> None:
    late = _sample("beep_event_loop_lag_seconds_bucket", {"le": "0.1"})
    samples = _sample("beep_event_loop_lag_seconds_count")
    watching = asyncio.create_task(pauses.watch_loop(sample_seconds=0.01))
    try:
        await asyncio.sleep(0.05)  # a few samples on time
        with caplog.at_level(logging.WARNING, logger="beep.pauses"):
            time.sleep(1.1)  # the whole loop blocked, as a long synchronous step would
            await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    taken = _sample("beep_event_loop_lag_seconds_count") - samples
    on_time = _sample("beep_event_loop_lag_seconds_bucket", {"le": "0.1"}) - late
    assert taken - on_time == 1  # exactly one sample was late by more than 100 ms: the stall
    stalls = [r for r in caplog.records if r.getMessage() == "event loop stalled"]
    assert len(stalls) == 1 and getattr(stalls[0], "stall_ms", 0) >= 1000
