"""An OTLP trace receiver for the tests (docs/tracing.md): the stacks' processes export their spans to it
with their real exporters, and tests read back the traces they started."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.harness.ports import free_port

Value = str | int | float | bool | None


@dataclass(frozen=True, eq=False)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: Mapping[str, Value]
    resource: Mapping[str, Value]  # the exporting process's: service.name, process.pid
    links: tuple[str, ...]  # linked trace ids

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", ""))


def _value(value: AnyValue) -> Value:
    kind = value.WhichOneof("value")
    if kind not in ("string_value", "int_value", "double_value", "bool_value"):
        return None  # arrays and maps: no check reads them
    found: Value = getattr(value, kind)
    return found


def _values(pairs: list[KeyValue]) -> dict[str, Value]:
    return {pair.key: _value(pair.value) for pair in pairs}


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
            resource = _values(list(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes=_values(list(s.attributes)),
                            resource=resource,
                            links=tuple(link.trace_id.hex() for link in s.links),
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def all(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def settings(self) -> dict[str, str]:
        """A stack's environment for exporting here. Nothing is sampled unless its caller asks (ratio 0): a
        test's own sampled `traceparent` decides, so only the traces tests start are kept."""
        return {
            "BEEP_OTEL_EXPORTER": "otlp",
            "BEEP_OTEL_ENDPOINT": self.url,
            "BEEP_OTEL_SAMPLING_RATIO": "0",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
