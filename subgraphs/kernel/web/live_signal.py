"""The live signal between the router and a subgraph: "this subscription is now live".

A client that subscribes and then reads history must know when live delivery is established, or an event
published in between is in neither (docs/live-signal.md). graphql-transport-ws has no such message, so
the router offers it to its clients (router/fanout.ts) and learns it from the subgraphs, here:

- The router asks per upstream connection, with the connection parameter `beep-live-signal` (clients do
  not reach subgraphs, so nothing a client sends sets it): on every fan-out stream's connection (the tier
  needs to know when its upstream is live), and on an unshared subscription's only when its client asked.
- On such a connection, `streams.follow` yields `LIVE` once per subscription: after it subscribed to the
  bus and the subscriber's access was checked again, before the starting state and any replay. Every
  event published after that reaches the stream.
- The per-event executor (`BudgetedExecution`) turns `LIVE` into a result with no data, and
  `LiveSignalResult` marks that result's `extensions.beepLive`; the router takes it out.
- A stream that can replay also says where it is live from (`extensions.beepLiveFrom`, a cursor read
  after it subscribed): the router's shared stream reopens from there when its upstream is lost before
  its first event, so what was published meanwhile is replayed, not lost (router/fanout.ts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, TypeVar, cast

from graphql import ExecutionResult
from strawberry.extensions import SchemaExtension

PARAM: Final = "beep-live-signal"  # the upstream connection parameter asking for the signal
EXTENSION: Final = "beepLive"  # the result extension that carries it back to the router
LIVE_FROM: Final = "beepLiveFrom"  # and the cursor the stream is live from, when it can replay

T = TypeVar("T")
U = TypeVar("U")


class _Live:
    """The marker `streams.follow` yields in a stream of items (never rendered as one), with the cursor
    the stream is live from when it can replay."""

    def __init__(self, live_from: str | None = None) -> None:
        self.live_from = live_from

    def __repr__(self) -> str:
        return "LIVE" if self.live_from is None else f"LIVE({self.live_from})"


LIVE: Final = _Live()

# Set by the per-event executor as it answers for the signal, read by `LiveSignalResult` for the same
# result (one operation's events are executed and finished in its own task, one at a time).
_answered: ContextVar[_Live | None] = ContextVar("beep_live_answered", default=None)


def wanted(connection_params: Mapping[str, Any] | None) -> bool:
    """Whether the connection's operations send the signal (the router asked, `PARAM`)."""
    return bool(connection_params and connection_params.get(PARAM))


def is_live(item: object) -> bool:
    return isinstance(item, _Live)


def marker(live_from: str | None = None) -> Any:
    """The signal, typed as whatever the stream yields (it passes through the resolver to the executor)."""
    return LIVE if live_from is None else _Live(live_from)


def passing(item: T, convert: Callable[[T], U]) -> U:
    """For a resolver that converts what `follow` yields: `convert(item)`, or the signal unchanged."""
    return cast(U, item) if isinstance(item, _Live) else convert(item)


def event_result(root_value: object) -> ExecutionResult | None:
    """The per-event result for the signal (no data; the extension is added by `LiveSignalResult`), or
    None for a real event."""
    if not isinstance(root_value, _Live):
        return None
    _answered.set(root_value)
    return ExecutionResult(data=None)


class LiveSignalResult(SchemaExtension):
    """Marks the subscription result that answers the signal with `extensions.beepLive` (and
    `beepLiveFrom`)."""

    def get_results(self) -> dict[str, Any]:
        signal = _answered.get()
        if signal is None:
            return {}
        _answered.set(None)
        if signal.live_from is None:
            return {EXTENSION: True}
        return {EXTENSION: True, LIVE_FROM: signal.live_from}
