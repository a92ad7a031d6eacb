"""Prometheus metrics of the call hosts (served with the process's others at `GET /metrics`).

Frames are counted where they pass (a counter increment per frame: ~0.1 µs beside aiortc's own work per
frame); calls and participants are read from the live hubs only when someone scrapes. Labels are
bounded: `kind` is audio or video, `outcome` ok, error or a `Refusal` code.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from media.voice.errors import VoiceRefused

if TYPE_CHECKING:
    from media.voice.hub import VoiceHub

FRAMES_RECEIVED = Counter(
    "beep_voice_frames_received_total", "Encoded media frames received from publishers.", ["kind"]
)
FRAMES_FORWARDED = Counter(
    "beep_voice_frames_forwarded_total", "Encoded media frames sent on to subscribers.", ["kind"]
)
FRAMES_DROPPED = Counter(
    "beep_voice_frames_dropped_total",
    "Frames dropped because a subscriber's queue was full (a slow receiver; video waits for a keyframe).",
    ["kind"],
)
JOINS = Counter("beep_voice_joins_total", "Call joins handled by this host, by outcome.", ["outcome"])

# Bound once: the per-frame paths pay an attribute lookup, not label validation.
RECEIVED = {kind: FRAMES_RECEIVED.labels(kind) for kind in ("audio", "video")}
FORWARDED = {kind: FRAMES_FORWARDED.labels(kind) for kind in ("audio", "video")}
DROPPED = {kind: FRAMES_DROPPED.labels(kind) for kind in ("audio", "video")}

P = ParamSpec("P")
R = TypeVar("R")


def counted_join(join: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Counts every join by its outcome: ok, a refusal's code, or error."""

    @functools.wraps(join)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            answer = await join(*args, **kwargs)
        except VoiceRefused as refused:
            JOINS.labels(refused.reason.value).inc()
            raise
        except Exception:
            JOINS.labels("error").inc()
            raise
        JOINS.labels("ok").inc()
        return answer

    return counted


_hubs: weakref.WeakSet[VoiceHub] = weakref.WeakSet()


def watch(hub: VoiceHub) -> None:
    _hubs.add(hub)


class _CallsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        calls = GaugeMetricFamily("beep_voice_calls", "Calls hosted by this process.")
        people = GaugeMetricFamily("beep_voice_participants", "Participants of the calls hosted here.")
        hubs = list(_hubs)
        calls.add_metric([], sum(len(hub.channels()) for hub in hubs))
        people.add_metric([], sum(hub.participant_count() for hub in hubs))
        yield calls
        yield people


REGISTRY.register(_CallsCollector())
