"""The access log: one line per request a process served (its own stream, `beep.access`), written when
the response is over: method, path, GraphQL operation name, status, duration, and the client's address
(a personal field: tokenised, kernel/logtokens.py). Never the query text nor its variables: they hold
what people write. Probes (/healthz, /metrics) are logged at DEBUG only, or they would be most lines."""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.types import Scope

from subgraphs.kernel.logging import ACCESS_LOGGER

log = logging.getLogger(ACCESS_LOGGER)

_PROBES = ("/healthz", "/metrics")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")


@dataclass
class Entry:
    method: str
    path: str
    client_ip: str | None
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    operation: str | None = None

    @classmethod
    def start(cls, scope: Scope) -> Entry:
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        return cls(method, scope.get("path", ""), _client_ip(scope))

    def write(self) -> None:
        level = logging.DEBUG if self.path.endswith(_PROBES) else logging.INFO
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "%s %s %s",
            self.method,
            self.path,
            self.status,
            extra={
                "method": self.method,
                "path": self.path,
                "operation": self.operation,
                "status": self.status,
                "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
                "client_ip": self.client_ip,
            },
        )


# The request's entry, for the GraphQL layer to name its operation (a mutable object: the layer may run
# in a copy of the middleware's context).
operation_var: ContextVar[Entry | None] = ContextVar("beep_access_entry", default=None)


def note_operation(body: object) -> None:
    """The operation name of a GraphQL request body (a batch: the first), if it is a name."""
    entry = operation_var.get()
    first = body[0] if isinstance(body, list) and body else body
    name = first.get("operationName") if isinstance(first, dict) else None
    if entry is not None and isinstance(name, str) and _NAME.fullmatch(name):
        entry.operation = name


def _client_ip(scope: Scope) -> str | None:
    """The address the router appended to X-Forwarded-For (the last entry), else the peer's."""
    for name, value in scope.get("headers") or []:
        if name == b"x-forwarded-for":
            last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
            if last:
                return last
    client = scope.get("client")
    return str(client[0]) if client else None
