"""OpenTelemetry hooks. Off by default; `BEEP_OTEL_EXPORTER=console|otlp` turns them on."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from strawberry.extensions import SchemaExtension

log = logging.getLogger("beep.tracing")
tracer = trace.get_tracer("beep")


def configure_tracing(service: str, exporter: str, endpoint: str = "") -> bool:
    if exporter == "none":
        return False
    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.error("BEEP_OTEL_EXPORTER=otlp needs the 'otlp' extra: pip install 'beep[otlp]'")
            return False
        span_exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    return True


class OperationTracing(SchemaExtension):
    """One span per GraphQL operation, named by its type and name. No arguments are recorded: they can
    hold passwords and message text. (Per-resolver spans cost too much to have on by default.)"""

    def on_operation(self) -> Iterator[None]:
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
