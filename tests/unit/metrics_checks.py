"""Checks of a Prometheus exposition (names, units, bounded labels), for the metrics tests."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from media.voice.errors import Refusal

# Every label a Beep metric may carry, and what its values may be (None: checked by `bounded_value`).
LABELS: dict[str, set[str] | None] = {
    "subgraph": {"users", "servers", "channels", "messages", "friends", "webhooks", "unknown"},
    "operation_type": {"query", "mutation", "subscription", "unknown"},
    # GraphQL operations; voice joins (media/voice/metrics.py): ok, error or a refusal's code
    "outcome": {"ok", "user_error", "server_error", "error", *(r.value for r in Refusal)},
    "result": {"hit", "miss"},  # cache lookups
    "path": {"one_statement", "transaction"},  # how a send was written (messages/service.py)
    "kind": {"audio", "video"},  # voice frames
    "limit": None,
    "database": None,
    "store": None,
    "consumer": None,
    # the router's (router/metrics.ts)
    "method": {"GET", "POST"},
    "status_code": None,
    # why the fan-out tier asked a subgraph who may receive a stream (router/fanout.ts CheckReason)
    "reason": {"subscribe", "reopen", "access_change", "periodic", "feed_reconnect"},
}


# prometheus_client's own (histogram buckets, process info).
STANDARD_LABELS = {
    "le",
    "quantile",
    "version",
    "implementation",
    "major",
    "minor",
    "patchlevel",
    "generation",
}


ID_LIKE = [
    re.compile(r"\d{5,}"),  # Beep ids are 64-bit numbers; a shard is at most 4 digits
    re.compile(r"[0-9a-f]{12,}", re.I),  # hashes, tokens
    re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-", re.I),  # UUIDs
    re.compile(r"@"),  # e-mail addresses
]


UNIT_WORDS = ("duration", "latency", "lag", "age", "wait")


def bounded_value(label: str, value: str) -> str | None:
    """Why `value` cannot be a value of `label` (None when it can)."""
    allowed = LABELS.get(label)
    if allowed is not None and value not in allowed:
        return f"{label}={value!r} is not one of {sorted(allowed)}"
    if label == "store" and not (value == "directory" or (value.isdigit() and int(value) < 4096)):
        return f"store={value!r} is not 'directory' or a logical shard"
    if label == "status_code" and not re.fullmatch(r"[1-5]\d\d", value):
        return f"status_code={value!r} is not an HTTP status"
    if label == "database" and not re.fullmatch(r"directory|physical-\d{1,4}|other", value):
        return f"database={value!r} is not directory or physical-N"
    if any(p.search(value) for p in ID_LIKE):
        return f"{label}={value!r} looks like an id"
    free_form = label not in ("store", "database", "status_code", "method")  # checked above
    if free_form and not re.fullmatch(r"[a-z][a-z0-9_-]*", value):
        return f"{label}={value!r} is not a short lower-case word"
    return None


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def check_exposition(text: str, prefix: str = "beep_") -> list[str]:
    """Problems of the `prefix*` families of a /metrics text: names, types, units, labels."""
    problems: list[str] = []
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        name = family.name
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            problems.append(f"{name}: not snake_case")
        if family.type == "counter":
            # The parser strips _total from a counter family's name; its samples must carry it.
            if not all(s.name.endswith(("_total", "_created")) for s in family.samples):
                problems.append(f"{name}: a counter whose samples do not end in _total")
        elif name.endswith("_total"):
            problems.append(f"{name}: a {family.type} named like a counter")
        if set(name.split("_")) & set(UNIT_WORDS) and not name.endswith("_seconds"):  # "message" is no age
            problems.append(f"{name}: a time without the _seconds unit")
        if re.search(r"_(ms|milliseconds|minutes|bytes_kb)(_|$)", name):
            problems.append(f"{name}: not in base units")
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label in STANDARD_LABELS:
                    continue
                if label not in LABELS:
                    problems.append(f"{name}: unexpected label {label!r}")
                    continue
                why = bounded_value(label, value)
                if why:
                    problems.append(f"{name}: {why}")
    return problems
