"""OpenTelemetry traces. Off by default; `BEEP_OTEL_EXPORTER=otlp` (or `console`) turns them on.

Off, nothing is set up: no provider, no exporter, no instrumentation, no request middleware, so the API's
tracer is the no-op one and the hooks below return at their first check (`ACTIVE`). On, every process
samples new traces at `BEEP_OTEL_SAMPLING_RATIO` and follows its caller's decision (W3C `traceparent`).

A message's trace crosses the outbox: the request's context is stored with each outbox row
(`current_traceparent`), the relay continues it when it publishes the row, the published event carries the
relay's context (`Event.trace_parent`), and each process's bus delivery and the router's fan-out continue
that. A span that covers several events (a consumer's batch) links to each of them instead. See
docs/tracing.md.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

log = logging.getLogger("beep.tracing")
tracer = trace.get_tracer("beep")
_propagator = TraceContextTextMapPropagator()

ACTIVE = False  # set once by configure_tracing: every hook below is free while it is False
# The trace context of the event a subscription is rendering (set as its bus subscription yields it), so
# the result's `extensions.traceparent` lets the router's fan-out continue the delivery's trace.
_delivering: contextvars.ContextVar[str | None] = contextvars.ContextVar("beep_delivering", default=None)


def configure_tracing(service: str, exporter: str, endpoint: str = "", sampling_ratio: float = 1.0) -> bool:
    global ACTIVE
    if exporter == "none":
        return False
    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The endpoint is the collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT): traces go to
        # <endpoint>/v1/traces over HTTP/protobuf.
        span_exporter = (
            OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces") if endpoint else OTLPSpanExporter()
        )
    provider = TracerProvider(
        # The process (semantic conventions' process.pid): replicas of one service are told apart by it.
        resource=Resource.create({"service.name": service, "process.pid": os.getpid()}),
        sampler=ParentBased(_RootSampler(sampling_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    ACTIVE = True
    return True


class _RootSampler(Sampler):
    """New traces at the ratio, except those a client call (a statement, a Redis command) would start:
    outside a request's or an event's trace they are background polling (the relay's sweep, leases), noise
    that would fill the trace store."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"BeepRoot{{{self._ratio.get_description()}}}"


def _instrument_clients() -> None:
    """SQLAlchemy statements and Redis commands as child spans of whatever runs them."""
    # Imported here: off, it is never loaded.
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().instrument()
    # On every engine, made before or after this. (OpenTelemetry's SQLAlchemy instrumentation declines
    # SQLAlchemy 2.1; these few lines do what it does, without statement text: comments and literals in
    # it are not ours to ship.)
    event.listen(Engine, "before_cursor_execute", _statement_started)
    event.listen(Engine, "after_cursor_execute", _statement_ended)
    event.listen(Engine, "handle_error", _statement_failed)


def _statement_started(
    conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    system = conn.dialect.name
    context._beep_span = tracer.start_span(
        f"{operation} {system}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": system, "db.operation.name": operation},
    )


def _statement_ended(
    _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    span = getattr(context, "_beep_span", None)
    if span is not None:
        span.end()


def _statement_failed(exception_context: Any) -> None:
    span = getattr(exception_context.execution_context, "_beep_span", None)
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception).__name__))
        span.end()


def current_traceparent() -> str | None:
    """The current span's context as a W3C traceparent, when it is sampled (an unsampled trace has
    nothing to continue)."""
    if not ACTIVE:
        return None
    return _traceparent_of(trace.get_current_span().get_span_context())


def _traceparent_of(context: trace.SpanContext) -> str | None:
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


def context_of(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


def span_link(traceparent: str | None) -> Link | None:
    parent = context_of(traceparent)
    if parent is None:
        return None
    span_context = trace.get_current_span(parent).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def continued(name: str, traceparent: str | None, **attributes: Any) -> AbstractContextManager[Any]:
    """A span continuing a stored or carried trace context (nothing when off or when there is none)."""
    if not ACTIVE or not traceparent:
        return nullcontext()
    return tracer.start_as_current_span(
        name, context=context_of(traceparent), kind=SpanKind.CONSUMER, attributes=attributes
    )


def linked(name: str, traceparents: Sequence[str | None], **attributes: Any) -> AbstractContextManager[Any]:
    """A span covering several events: a new trace, linked to each event's (nothing when off or when no
    event was traced)."""
    if not ACTIVE:
        return nullcontext()
    links = [link for link in map(span_link, traceparents) if link is not None]
    if not links:
        return nullcontext()
    return tracer.start_as_current_span(
        name, context=otel_context.Context(), kind=SpanKind.CONSUMER, links=links, attributes=attributes
    )


def covering(name: str, traceparents: Sequence[str | None], **attributes: Any) -> AbstractContextManager[Any]:
    """A span over one event (continuing its trace) or several (linked to each)."""
    if not ACTIVE:
        return nullcontext()
    traced = [t for t in traceparents if t]
    if len(traced) == 1:
        return continued(name, traced[0], **attributes)
    return linked(name, traced, events=len(traceparents), **attributes)


_NOTHING_RELAYED: Mapping[int, str] = MappingProxyType({})


@contextmanager
def _relay_spans(store: int, rows: Sequence[tuple[int, str, str | None]]) -> Iterator[Mapping[int, str]]:
    spans: list[trace.Span] = []
    relayed: dict[int, str] = {}
    try:
        for position, topic, traceparent in rows:
            parent = context_of(traceparent)
            if parent is None:
                continue
            span = tracer.start_span(
                "outbox.relay",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "beep.outbox.store": store,
                    "beep.outbox.position": position,
                    "beep.topic": topic,
                },
            )
            spans.append(span)
            traceparent_now = _traceparent_of(span.get_span_context())
            if traceparent_now is not None:
                relayed[position] = traceparent_now
        # The batch goes out in one round trip: the bus publish (a Redis PUBLISH) is the relay span's
        # child when the batch holds one traced row; one covering several traces is none's.
        token = otel_context.attach(trace.set_span_in_context(spans[0])) if len(spans) == 1 else None
        try:
            yield relayed
        finally:
            if token is not None:
                otel_context.detach(token)
    finally:
        for span in spans:
            span.end()


def relaying(
    store: int, rows: Sequence[tuple[int, str, str | None]]
) -> AbstractContextManager[Mapping[int, str]]:
    """The relay's publication of positioned rows (position, topic, stored traceparent): a span per traced
    row, in its request's trace, for as long as the batch is published; yields each traced row's new
    traceparent, which the published event carries to its deliveries."""
    if not ACTIVE:
        return nullcontext(_NOTHING_RELAYED)
    return _relay_spans(store, rows)


def delivering(traceparent: str | None) -> None:
    """Marks the event a subscription is about to render (see `OperationTracing.get_results`)."""
    if ACTIVE:
        _delivering.set(traceparent)


class TraceRequests:
    """A server span per HTTP request, joining the caller's trace (the router's `traceparent`). WebSocket
    connections get none: they last for hours; their events are traced by delivery instead. Installed only
    when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        parent = _propagator.extract(carrier)
        method, path = scope.get("method", "GET"), scope.get("path", "")
        status: list[int] = []

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            await self.app(scope, receive, sending)
            if status:
                span.set_attribute("http.response.status_code", status[0])


class OperationTracing(SchemaExtension):
    """One span per GraphQL operation, named by its type and name. No arguments are recorded: they can
    hold passwords and message text. (Per-resolver spans cost too much to have on by default.)"""

    def on_operation(self) -> Iterator[None]:
        if not ACTIVE:
            yield
            return
        context = self.execution_context
        with tracer.start_as_current_span("graphql.operation") as current:
            yield
            if current.is_recording():
                current.set_attribute("graphql.operation.name", context.operation_name or "")
                operation_type = getattr(context, "operation_type", None)
                if operation_type is not None:
                    current.set_attribute("graphql.operation.type", str(operation_type.value))
                if context.result is not None and getattr(context.result, "errors", None):
                    current.set_attribute("graphql.errors", len(context.result.errors or []))

    def get_results(self) -> dict[str, Any]:
        """Per subscription event: the trace context of the delivery it renders, for the router's fan-out
        (which takes it out before the event reaches a client)."""
        if not ACTIVE:
            return {}
        traceparent = _delivering.get()
        if traceparent is None:
            return {}
        _delivering.set(None)
        return {"traceparent": traceparent}
