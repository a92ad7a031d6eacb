"""One event catalogue: every Event subclass lives where `decode` finds it (a context's `events.py`, or the
kernel), and round-trips through encode/decode in every process that consumes events, whichever modules
that process happened to import (docs/architecture-boundaries.md)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

import subgraphs
from subgraphs.kernel.events.catalogue import Event, catalogue_modules, decode, encode
from subgraphs.kernel.settings import SUBGRAPH_NAMES

pytestmark = pytest.mark.unit

# The processes that decode events: the least of them (the kernel alone), each subgraph (its subscriptions
# and the fan-out tier's internal endpoints, kernel/web/live_access.py, are served by it) and the worker
# (relay and durable consumers).
PROCESSES = (
    "subgraphs.kernel.events.catalogue",
    *(f"subgraphs.{name}.app" for name in SUBGRAPH_NAMES),
    "beep.worker",
)

SAMPLES: dict[str, Any] = {
    "int": 41,
    "int | None": 42,
    "str": "text",
    "str | None": "more",
    "bool": True,
    "datetime": datetime(2026, 12, 5, 0, 30, tzinfo=UTC),
    "datetime | None": datetime(2026, 12, 5, 0, 31, tzinfo=UTC),
    "list[int]": [1, 2],
}


def every_event_type() -> list[type[Event]]:
    """Every Event subclass defined anywhere under subgraphs/ (each module imported to find them)."""
    for module in pkgutil.walk_packages(subgraphs.__path__, "subgraphs."):
        importlib.import_module(module.name)
    found: list[type[Event]] = []
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith("tests."):  # other tests' own event types are not the product's
            found.append(cls)
    return sorted(found, key=lambda cls: cls.type_name)


def sample(cls: type[Event]) -> Event:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in ("outbox_store", "outbox_position"):
            continue
        annotation = str(field.type)
        assert annotation in SAMPLES, f"{cls.__name__}.{field.name}: add a sample {annotation} to SAMPLES"
        values[field.name] = SAMPLES[annotation]
    return cls(**values, outbox_store=3, outbox_position=9)


def test_every_event_type_is_in_the_catalogue() -> None:
    homes = {*catalogue_modules(), "subgraphs.kernel.events.catalogue"}
    strays = [f"{cls.__module__}.{cls.__name__}" for cls in every_event_type() if cls.__module__ not in homes]
    assert not strays, f"define these in their context's events.py: {strays}"


def test_every_event_type_round_trips_here() -> None:
    for cls in every_event_type():
        event = sample(cls)
        back = decode(encode(event))
        assert back == event and type(back) is cls
        assert (back.outbox_store, back.outbox_position) == (3, 9)


# What each process runs: import its entry module and nothing else, then decode what the parent encoded.
CHILD = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
from subgraphs.kernel.events.catalogue import decode, encode
print(json.dumps([[decode(raw).type_name, encode(decode(raw))] for raw in json.load(sys.stdin)]))
"""


def test_every_event_type_decodes_in_every_process_that_consumes_events() -> None:
    encoded = [encode(sample(cls)) for cls in every_event_type()]
    expected = [[json.loads(raw)["type"], raw] for raw in encoded]
    children = {
        entry: subprocess.Popen(
            [sys.executable, "-c", CHILD, entry],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for entry in PROCESSES
    }
    failures = {}
    for entry, child in children.items():
        out, err = child.communicate(json.dumps(encoded), timeout=120)
        if child.returncode != 0 or json.loads(out) != expected:
            failures[entry] = err.strip().splitlines()[-1:] or out[:200]
    assert not failures, failures
