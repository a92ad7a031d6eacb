"""Domain events: typed, frozen dataclasses with an explicit audience, serialised by type name."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

_REGISTRY: dict[str, type[Event]] = {}
E = TypeVar("E", bound="Event")


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of every event: subclasses are frozen dataclasses of JSON-friendly fields (int, str, datetime).

    A durable event (written to the outbox, kernel/events/outbox.py) is published with its place in its
    store's sequence: `outbox_store` and `outbox_position`, set by the relay. Ephemeral ones (typing,
    presence) carry None there. `trace_parent` is the W3C trace context to continue when delivering it (set by
    the relay when the request that wrote it was traced: kernel/tracing.py)."""

    type_name: ClassVar[str]
    outbox_store: int | None = dataclasses.field(default=None, kw_only=True, compare=False)
    outbox_position: int | None = dataclasses.field(default=None, kw_only=True, compare=False)
    trace_parent: str | None = dataclasses.field(default=None, kw_only=True, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__] is not cls:
            raise TypeError(f"duplicate event type {cls.__name__}")
        _REGISTRY[cls.__name__] = cls


# The relay also publishes every AccessChanged here (one outbox row, in its tenant's shard: see
# `announces_access_change`): the routers' fan-out tiers re-check the sockets of the streams it touches
# (kernel/web/live_access.py), whichever servers they are.
ACCESS_TOPIC = "access"


def topic_for_channel(channel_id: int) -> str:
    return f"channel:{channel_id}"


def topic_for_server(server_id: int) -> str:
    return f"server:{server_id}"


def topic_for_user(user_id: int) -> str:
    return f"user:{user_id}"


def encode(event: Event) -> str:
    fields = {f.name: _to_json(getattr(event, f.name)) for f in dataclasses.fields(event)}
    if fields["trace_parent"] is None:
        del fields["trace_parent"]  # untraced (tracing off): the payload stays as it was
    return json.dumps({"type": event.type_name, "data": fields}, separators=(",", ":"))


def announces_access_change(raw: str) -> bool:
    """Whether an encoded event (as `encode` writes it) is an AccessChanged, without decoding it."""
    return raw.startswith('{"type":"AccessChanged"')


def stamp(raw: str, store: int, position: int, trace_parent: str | None = None) -> str:
    """An encoded event with its outbox place (and the trace context to continue) set, without decoding
    it: the relay need not know every event type (a newer release's included)."""
    payload = json.loads(raw)
    payload["data"].update(outbox_store=store, outbox_position=position)
    if trace_parent is not None:
        payload["data"]["trace_parent"] = trace_parent
    return json.dumps(payload, separators=(",", ":"))


def catalogue_modules() -> tuple[str, ...]:
    """The one event catalogue: a context publishes its events from `subgraphs/<context>/events.py`, the
    kernel its own from this module and kernel/events/outbox.py. Named by string, as plugins are, so that the
    kernel imports no context (docs/architecture-boundaries.md)."""
    from subgraphs.kernel.settings import SUBGRAPH_NAMES

    return (*(f"subgraphs.{name}.events" for name in SUBGRAPH_NAMES), "subgraphs.kernel.events.outbox")


def load_catalogue() -> None:
    """Register every event type, whichever modules this process imported (idempotent: imports are cached)."""
    for module in catalogue_modules():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as missing:
            if missing.name != module:  # a module it imports is missing: a real fault
                raise
            # a context that publishes no events (webhooks today) has no events module


def decode(raw: str | bytes) -> Event:
    """The event `encode` wrote. A type this process has not met yet loads the catalogue first, so only a
    type no module here defines (a newer release's, during an upgrade) raises ValueError."""
    payload = json.loads(raw)
    cls = _REGISTRY.get(payload.get("type"))
    if cls is None:
        load_catalogue()
        cls = _REGISTRY.get(payload.get("type"))
    if cls is None:
        raise ValueError(f"unknown event type {payload.get('type')!r}")
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    data = {k: _from_json(v, str(hints.get(k, ""))) for k, v in payload["data"].items() if k in hints}
    return cls(**data)


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _from_json(value: Any, annotation: str) -> Any:
    if value is not None and "datetime" in annotation:
        return datetime.fromisoformat(value)
    return value


@dataclass(frozen=True)
class AccessChanged(Event):
    """Who may see what in a server (or in one channel of it) may have changed: live streams of that
    audience re-check access at once instead of at their next event. Published by whatever changed it
    (roles, overwrites, membership, deletions); defined here so every process can decode it."""

    server_id: int
    channel_id: int | None


def access_changed(
    uow_emit: Callable[[str, Event], None], server_id: int, channel_id: int | None = None
) -> None:
    """Announce an access change to the right audience: the channel's topic, or the whole server's."""
    topic = topic_for_channel(channel_id) if channel_id is not None else topic_for_server(server_id)
    uow_emit(topic, AccessChanged(server_id, channel_id))


@dataclass(frozen=True)
class PresenceChanged(Event):
    """A user's presence changed: connected/disconnected (live connections) or the status they chose.
    Published by the users context on `server:{id}` of each of their servers and on `user:{id}` of each
    friend; member lists update from it."""

    user_id: int
    connected: bool
    status: str
