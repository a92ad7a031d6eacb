"""Logging: JSON lines (level, timestamp, service, container_id, stream, logger, message, trace_id,
span_id, request_id) for machines, the default; or a short readable line per event for a person at a
terminal (`beep dev`). Both write personal data only as tokens (kernel/logtokens.py); docs/logging.md."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from subgraphs.kernel.logtokens import PERSONAL_FIELDS, LogTokenizer, Personal, generate_key

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


def _trace_ids() -> tuple[str | None, str | None]:
    """The current OpenTelemetry span's trace and span ids, when a span is being recorded."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a dependency
        return None, None
    ctx = trace.get_current_span().get_span_context()
    return (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx.is_valid else (None, None)


# Streams a shipping config routes on (docs/logging.md): the audit trail and the access log have loggers
# of their own; everything else is the application's.
AUDIT_LOGGER = "beep.audit"
ACCESS_LOGGER = "beep.access"
_STREAMS = {AUDIT_LOGGER: "audit", ACCESS_LOGGER: "access"}


class _Tokenizing(logging.Formatter):
    """Personal data out of every field before a formatter writes it. Without a key: a random one per
    process (never clear text; such tokens cannot be revealed once the process is gone)."""

    def __init__(self, tokenizer: LogTokenizer | None) -> None:
        super().__init__()
        self.tokenizer = tokenizer or LogTokenizer(generate_key())

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                found[key] = self.field(key, value)
        return found

    def field(self, key: str, value: Any) -> Any:
        if isinstance(value, Personal):
            return self.tokenizer.token(str(value.value))
        if key in PERSONAL_FIELDS and value is not None:
            return self.tokenizer.token(str(value))
        if isinstance(value, str):
            return self.tokenizer.scrub(value)
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        if isinstance(value, dict):
            return {k: self.field(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.field(key, v) for v in value]
        return self.tokenizer.scrub(str(value))

    def message(self, record: logging.LogRecord) -> str:
        return self.tokenizer.scrub(record.getMessage())

    def exception(self, record: logging.LogRecord) -> str:
        return self.tokenizer.scrub(self.formatException(record.exc_info)) if record.exc_info else ""


class JsonFormatter(_Tokenizing):
    def __init__(self, service: str, tokenizer: LogTokenizer | None = None) -> None:
        super().__init__(tokenizer)
        self.service = service
        self.container_id = _container_id()

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids()
        entry: dict[str, Any] = {
            "level": record.levelname.lower(),
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "service": self.service,
            "container_id": self.container_id,
            "stream": _STREAMS.get(record.name, "app"),
            "logger": record.name,
            "message": self.message(record),
            "trace_id": trace_id,
            "span_id": span_id,
            "request_id": request_id_var.get(),
        }
        entry.update(self.fields(record))
        if record.exc_info:
            entry["exception"] = self.exception(record)
        return json.dumps(entry, default=str)


class TextFormatter(_Tokenizing):
    """`12:04:31 app: runtime started  mode=embedded shards=64`, `12:04:40 WARNING app: presence start failed
    request=1f2e3d4c`: local time, the level unless INFO, the logger without `beep.`, the message, the
    extra fields and the request's id (its first 8 characters)."""

    def __init__(self, tokenizer: LogTokenizer | None = None) -> None:
        super().__init__(tokenizer)

    def format(self, record: logging.LogRecord) -> str:
        parts = [datetime.fromtimestamp(record.created).strftime("%H:%M:%S")]  # local time: the reader's
        if record.levelno != logging.INFO:
            parts.append(record.levelname)
        parts.append(f"{_short_name(record.name)}: {self.message(record)}")
        fields = [f"{key}={_text_value(value)}" for key, value in self.fields(record).items()]
        request_id = request_id_var.get()
        if request_id:
            fields.append(f"request={request_id[:8]}")
        line = " ".join(parts) + (f"  {' '.join(fields)}" if fields else "")
        if record.exc_info:
            line += "\n" + self.exception(record)
        return line


def _short_name(logger: str) -> str:
    if logger == "uvicorn.error":  # uvicorn's own messages, not only errors
        return "uvicorn"
    return logger.removeprefix("beep.")


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(ch.isspace() or ch in '"=' for ch in text) else text


def _not_for_people(record: logging.LogRecord) -> bool:
    """httpx's line per request (readiness polls, JWKS fetches), the access log's (the router's log has
    them); uvicorn's "connection open", which follows its "WebSocket ... [accepted]" line."""
    if record.levelno >= logging.WARNING:
        return True
    if record.name in ("httpx", ACCESS_LOGGER):
        return False
    return not (record.name == "uvicorn.error" and record.msg == "connection open")


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "json", token_key: str | None = None
) -> None:
    """`token_key`: BEEP_LOG_TOKEN_KEY (Settings.resolved_log_token_key); None: a random one."""
    tokenizer = LogTokenizer(token_key) if token_key else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, tokenizer) if fmt == "json" else TextFormatter(tokenizer))
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
