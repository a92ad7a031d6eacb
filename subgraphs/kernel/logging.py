"""Logging: JSON lines (level, timestamp, service, container_id, message, trace_id, request_id) for
machines, the default; or a short readable line per event for a person at a terminal (`beep dev`)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("beep_request_id", default=None)

# Attributes every LogRecord has; anything else passed via `extra=` is emitted as a field.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def _container_id() -> str:
    # Kubernetes sets HOSTNAME to the pod name; elsewhere the host name identifies the process's machine.
    return os.environ.get("HOSTNAME") or socket.gethostname()


def _trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a dependency
        return None
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.container_id = _container_id()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname.lower(),
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "service": self.service,
            "container_id": self.container_id,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": _trace_id(),
            "request_id": request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`12:04:31 app: runtime started  mode=embedded shards=64`, `12:04:40 WARNING app: presence start failed
    request=1f2e3d4c`: local time, the level unless INFO, the logger without `beep.`, the message, the
    extra fields and the request's id (its first 8 characters)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [datetime.fromtimestamp(record.created).strftime("%H:%M:%S")]  # local time: the reader's
        if record.levelno != logging.INFO:
            parts.append(record.levelname)
        parts.append(f"{_short_name(record.name)}: {record.getMessage()}")
        fields = [
            f"{key}={_text_value(value)}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        ]
        request_id = request_id_var.get()
        if request_id:
            fields.append(f"request={request_id[:8]}")
        line = " ".join(parts) + (f"  {' '.join(fields)}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short_name(logger: str) -> str:
    if logger == "uvicorn.error":  # uvicorn's own messages, not only errors
        return "uvicorn"
    return logger.removeprefix("beep.")


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(ch.isspace() or ch in '"=' for ch in text) else text


def _not_for_people(record: logging.LogRecord) -> bool:
    """httpx's line per request (readiness polls, JWKS fetches); uvicorn's "connection open", which follows
    its "WebSocket ... [accepted]" line."""
    if record.levelno >= logging.WARNING:
        return True
    return record.name != "httpx" and not (record.name == "uvicorn.error" and record.msg == "connection open")


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    if fmt != "json":  # a person reads it: not every outgoing request, nor the socket's second line
        handler.addFilter(_not_for_people)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
