"""A message's trace, end to end (docs/tracing.md): a stack with OTLP export on, a message sent through
the router while a listener's socket is open, and every process's spans collected by a trace receiver in
this test. One trace id must join the router's request, the messages subgraph's operation, its
transaction and statements, the worker's relay of the outbox row, the bus delivery and the router's
fan-out to the socket.

The stack is the embedded one (the subgraphs and the worker in one process, beside the router): eight
processes of the full stack do not start in time on a loaded two-core machine, and what the full mode
adds (the router to a subgraph over HTTP, the stored context read back by whichever process relays) is
exercised here too: the relay runs in its own task, outside the request, and can only find the trace in
the outbox row. `TRACE_STACK` switches to the full stack (BEEP_TEST_TRACE_STACK=full), where each span's
service names its process."""

from __future__ import annotations

import asyncio
import gzip
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.harness.client import GraphQLClient
from tests.harness.ports import free_port
from tests.harness.stack import Stack, start_embedded, start_full
from tests.integration.flows import MESSAGE_EVENTS, SEND_MESSAGE, send, subscribe_settled
from tests.integration.message_flows import created, guild


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: frozenset[str]  # attribute keys
    links: tuple[str, ...]  # linked trace ids


class TraceReceiver:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf ExportTraceServiceRequest) that keeps what
    it is sent. A fake: no Tempo or OpenTelemetry Collector can run on this machine (no registry serves
    either as a package); the processes under test speak the real protocol to it, with their real
    exporters, and it decodes the real message types from opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self._body()
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                protobuf = self.headers.get("content-type") == "application/x-protobuf"
                ok = self.path == "/v1/traces" and protobuf
                if ok:
                    receiver._take(ExportTraceServiceRequest.FromString(body))
                self.send_response(200 if ok else 400)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("content-length", "0")))
                chunks = []  # Node's exporter streams its body
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _take(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes=frozenset(a.key for a in s.attributes),
                            links=tuple(link.trace_id.hex() for link in s.links),
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[TraceReceiver]:
    found = TraceReceiver()
    yield found
    found.close()


TRACE_STACK = os.environ.get("BEEP_TEST_TRACE_STACK", "embedded")


@pytest.fixture(scope="module")
def traced_stack(receiver: TraceReceiver) -> Iterator[Stack]:
    settings = {
        "BEEP_OTEL_EXPORTER": "otlp",
        "BEEP_OTEL_ENDPOINT": receiver.url,
        # Nothing is sampled unless asked: the test's own traceparent (sampled) decides.
        "BEEP_OTEL_SAMPLING_RATIO": "0",
    }
    stack = start_full(extra_env=settings) if TRACE_STACK == "full" else start_embedded(settings)
    try:
        yield stack
    finally:
        stack.stop()


def wanted(spans: list[Span]) -> dict[str, bool]:
    """What a message's trace must hold, each named for the failure message (by process in full mode;
    in embedded mode the subgraphs and the worker are the one `beep-all`)."""
    messages, worker = ("-messages", "-worker") if TRACE_STACK == "full" else ("-all", "-all")

    def has(service: str, name: str = "", attribute: str = "") -> bool:
        return any(
            s.service.endswith(service) and name in s.name and (not attribute or attribute in s.attributes)
            for s in spans
        )

    return {
        "router request": has("-router", "POST /graphql"),
        "router subgraph call": has("-router", "subgraph"),
        "messages server span": has(
            messages, "POST /graphql" if TRACE_STACK == "full" else "POST /messages/graphql"
        ),
        "messages operation": has(messages, "graphql.operation"),
        "messages transaction": has(messages, "transaction"),
        "messages database statement": has(messages, attribute="db.system"),
        "worker relay": has(worker, "outbox.relay"),
        "messages bus delivery": has(messages, "bus.deliver"),
        "router fan-out delivery": has("-router", "fanout.deliver"),
    }


async def test_a_message_is_one_trace_from_the_router_through_the_outbox_to_its_delivery(
    traced_stack: Stack, receiver: TraceReceiver
) -> None:
    owner, members, _server, channel = await guild(traced_stack, 1)
    _account, listener = members[0]
    async with listener.subscriptions() as connection:
        operation = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel})
        # Unsampled (ratio 0, no caller's context): delivered as ever, with no trace to continue.
        await send(owner, channel, "untraced")
        (untraced,) = await created(operation, 1)
        assert untraced["message"]["content"] == "untraced"
        trace_id = secrets.token_hex(16)
        # The client starts the trace (sampled), so that only this message's trace is kept (ratio 0).
        sender = GraphQLClient(traced_stack.router_url, owner.token)
        sent = await sender.execute(
            SEND_MESSAGE,
            {"input": {"channelId": channel, "content": "traced"}},
            traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
        )
        assert not sent.errors and sent.data is not None, sent.errors
        assert sent.data["sendMessage"]["__typename"] == "Message", sent.data
        (event,) = await created(operation, 1)
        assert event["message"]["content"] == "traced"
        assert "traceparent" not in str(event)  # the delivery's context stays inside

    deadline = time.monotonic() + 20  # exporters batch for 1 s; a loaded machine takes longer
    while True:
        spans = receiver.trace(trace_id)
        found = wanted(spans)
        if all(found.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    missing = [k for k, ok in found.items() if not ok]
    assert not missing, (missing, sorted({(s.service, s.name) for s in spans}))

    # One tree: every span but the client's root has its parent in the trace.
    ids = {s.span_id for s in spans}
    orphans = {(s.service, s.name) for s in spans if s.parent_id not in ids}
    assert len({s.parent_id for s in spans if s.parent_id not in ids}) == 1, orphans
    # The relay's span continues the request's: its parent is a span of the messages subgraph.
    by_id = {s.span_id: s for s in spans}
    relay = next(s for s in spans if s.name == "outbox.relay")
    assert by_id[relay.parent_id].name == "transaction", by_id[relay.parent_id]
    # Nothing sampled outside a sampled caller's trace (ratio 0): the sign-ups and the set-up are not.
    assert all(s.trace_id == trace_id or trace_id in s.links for s in receiver.spans), {
        (s.service, s.name) for s in receiver.spans if s.trace_id != trace_id
    }
