"""Domain events: typed, frozen dataclasses with an explicit audience, serialised by type name."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any, ClassVar, TypeVar

_REGISTRY: dict[str, type[Event]] = {}
E = TypeVar("E", bound="Event")


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of every event: subclasses are frozen dataclasses of JSON-friendly fields (int, str, datetime)."""

    type_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__] is not cls:
            raise TypeError(f"duplicate event type {cls.__name__}")
        _REGISTRY[cls.__name__] = cls


def topic_for_channel(channel_id: int) -> str:
    return f"channel:{channel_id}"


def topic_for_server(server_id: int) -> str:
    return f"server:{server_id}"


def topic_for_user(user_id: int) -> str:
    return f"user:{user_id}"


def encode(event: Event) -> str:
    fields = {f.name: _to_json(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return json.dumps({"type": event.type_name, "data": fields}, separators=(",", ":"))


def decode(raw: str | bytes) -> Event:
    payload = json.loads(raw)
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
