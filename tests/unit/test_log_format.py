"""Logs: JSON lines by default (full mode, the chart), a short readable line per event in `beep dev`."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from beep.cli import dev_settings
from subgraphs.kernel.logging import JsonFormatter, TextFormatter, configure_logging, request_id_var
from subgraphs.kernel.settings import Settings


def record(
    name: str, level: int, message: str, *args: object, exc: bool = False, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, sys.exc_info() if exc else None)
    made.__dict__.update(extra)
    made.created = 1_700_000_000.0
    return made


def test_one_short_line_per_event() -> None:
    line = TextFormatter().format(
        record("beep.app", logging.INFO, "runtime started", mode="embedded", shards=64)
    )
    clock, rest = line.split(" ", 1)
    assert len(clock) == 8 and clock.count(":") == 2  # HH:MM:SS, local time
    assert rest == "app: runtime started  mode=embedded shards=64"


def test_the_level_shows_unless_info_and_uvicorn_is_named_plainly() -> None:
    formatter = TextFormatter()
    socket = record(
        "uvicorn.error", logging.INFO, '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/users/graphql"
    )
    assert formatter.format(socket).endswith(' uvicorn: 127.0.0.1:5 - "WebSocket /users/graphql" [accepted]')
    refused = record(
        "beep.app", logging.WARNING, "websocket rejected: invalid token", reason="Signature expired"
    )
    assert formatter.format(refused).endswith(
        ' WARNING app: websocket rejected: invalid token  reason="Signature expired"'
    )


def test_the_request_id_and_the_traceback_follow() -> None:
    token = request_id_var.set("1f2e3d4c5b6a79880123456789abcdef")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            line = TextFormatter().format(record("beep.worker", logging.ERROR, "the relay stopped", exc=True))
    finally:
        request_id_var.reset(token)
    first, *trace = line.splitlines()
    assert first.endswith(" ERROR worker: the relay stopped  request=1f2e3d4c")
    assert trace[0] == "Traceback (most recent call last):" and trace[-1] == "ValueError: boom"


def test_json_stays_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEEP_LOG_FORMAT", raising=False)
    assert Settings().log_format == "json"
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    try:
        configure_logging("beep-test")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        entry = json.loads(handler.format(record("beep.app", logging.INFO, "runtime started", mode="full")))
        assert (entry["message"], entry["mode"], entry["service"]) == ("runtime started", "full", "beep-test")
        configure_logging("beep-dev", fmt="text")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, TextFormatter)
        # a person is not shown every outgoing request, nor uvicorn's second line per socket
        assert not handler.filter(record("httpx", logging.INFO, "HTTP Request: GET http://x/readiness"))
        assert not handler.filter(record("uvicorn.error", logging.INFO, "connection open"))
        assert not handler.filter(record("beep.access", logging.INFO, "POST /users/graphql 200"))
        assert handler.filter(record("httpx", logging.WARNING, "retrying"))
        assert handler.filter(record("beep.app", logging.INFO, "runtime started"))
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])


def test_beep_dev_logs_text_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEEP_LOG_FORMAT", raising=False)
    monkeypatch.delenv("BEEP_ROUTER_PORT", raising=False)
    chosen = dev_settings(Settings(), 4800)
    assert (chosen.log_format, chosen.router_port) == ("text", 4800)
    assert chosen.resolved_public_url == "http://127.0.0.1:4800"
    monkeypatch.setenv("BEEP_LOG_FORMAT", "json")
    assert dev_settings(Settings(), None).log_format == "json"
