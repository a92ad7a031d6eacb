"""Traces (kernel/tracing.py, docs/tracing.md): off, nothing is set up and no payload changes; on, the
trace context stored with an outbox row is continued by the relay, a consumer and the bus's delivery.

The "on" cases run in a child process: a tracer provider is process-wide and set once, and the rest of
the unit tests must see tracing off."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from subgraphs.kernel import tracing
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.catalogue import decode, encode, stamp
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.app import create_app
from subgraphs.messages.events import MessageDeleted

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def deleted() -> MessageDeleted:
    return MessageDeleted(message_id=1, channel_id=2, server_id=3)


def test_off_nothing_is_set_up_and_payloads_are_unchanged(tmp_path: Path) -> None:
    assert tracing.configure_tracing("beep-test", "none") is False
    assert tracing.ACTIVE is False
    assert tracing.current_traceparent() is None
    (row,) = outbox.rows_for([("channel:2", deleted())])
    assert row["trace_context"] is None
    assert "trace_parent" not in encode(deleted())
    with tracing.relaying(0, [(1, "channel:2", TRACEPARENT)]) as relayed:
        assert relayed == {}  # nothing to continue: no span was started
    app = create_app([], Settings(data_dir=tmp_path), mounted=True)
    assert not isinstance(getattr(app, "app", None), tracing.TraceRequests)


def test_the_relay_stamps_the_context_its_deliveries_continue() -> None:
    raw = stamp(encode(deleted()), 0, 7, TRACEPARENT)
    event = decode(raw)
    assert (event.outbox_position, event.trace_parent) == (7, TRACEPARENT)
    assert json.loads(stamp(encode(deleted()), 0, 7))["data"].get("trace_parent") is None


ON = textwrap.dedent(
    """
    import asyncio, json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from subgraphs.kernel.events import outbox
    from subgraphs.kernel import tracing
    from subgraphs.kernel.events.bus import InProcessBus
    from subgraphs.kernel.events.catalogue import encode, stamp
    from subgraphs.messages.events import MessageDeleted

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    trace.set_tracer_provider(provider)
    tracing.ACTIVE = True

    async def main():
        event = MessageDeleted(message_id=1, channel_id=2, server_id=3)
        with tracing.tracer.start_as_current_span("request"):
            (row,) = outbox.rows_for([("channel:2", event)])
        bus = InProcessBus()
        async with bus.subscribe("channel:2") as events:
            with tracing.relaying(0, [(1, "channel:2", row["trace_context"])]) as relayed:
                await bus.publish_encoded([("channel:2", stamp(encode(event), 0, 1, relayed.get(1)))])
            received = await anext(aiter(events))
        with tracing.covering("outbox.consume batch", [row["trace_context"], row["trace_context"]]):
            pass
        with tracing.covering("outbox.consume one", [row["trace_context"], None]):
            pass
        spans = {
            s.name: {
                "trace": f"{s.context.trace_id:032x}",
                "id": f"{s.context.span_id:016x}",
                "parent": f"{s.parent.span_id:016x}" if s.parent else None,
                "links": [f"{l.context.trace_id:032x}" for l in s.links],
            }
            for s in exported.get_finished_spans()
        }
        print(json.dumps({"spans": spans, "stored": row["trace_context"], "received": received.trace_parent,
                          "extension": tracing.OperationTracing.get_results(None)}))

    asyncio.run(main())
    """
)


def test_on_one_trace_runs_from_the_request_through_the_relay_to_the_delivery() -> None:
    done = subprocess.run([sys.executable, "-c", ON], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    spans = found["spans"]
    request, relay, deliver = spans["request"], spans["outbox.relay"], spans["bus.deliver"]
    assert found["stored"] == f"00-{request['trace']}-{request['id']}-01"
    assert relay["trace"] == request["trace"] and relay["parent"] == request["id"]
    assert deliver["trace"] == request["trace"] and deliver["parent"] == relay["id"]
    # The subscriber renders the event in the delivery's context, which its result hands the router.
    assert found["received"] == f"00-{deliver['trace']}-{deliver['id']}-01"
    assert found["extension"] == {"traceparent": found["received"]}
    # A batch links to its events' traces; one traced event continues its trace.
    batch, one = spans["outbox.consume batch"], spans["outbox.consume one"]
    assert batch["trace"] != request["trace"] and batch["links"] == [request["trace"]] * 2
    assert one["trace"] == request["trace"] and one["parent"] == request["id"]
