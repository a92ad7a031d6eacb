// OpenTelemetry traces for the router (docs/tracing.md). Off unless BEEP_OTEL_EXPORTER is `otlp` or
// `console` (the subgraphs' setting): then Hive Gateway's OpenTelemetry plugin traces each request,
// follows and forwards W3C `traceparent` to the subgraphs, and spans go over OTLP HTTP/protobuf to
// BEEP_OTEL_ENDPOINT (its /v1/traces), sampled at BEEP_OTEL_SAMPLING_RATIO. Off, none of the SDK is loaded
// and the @opentelemetry/api calls in fanout.ts hit its no-op tracer.
import {
  ROOT_CONTEXT,
  SpanKind,
  context as otelContext,
  propagation,
  trace,
} from '@opentelemetry/api';

export interface TracingSettings {
  exporter: 'none' | 'otlp' | 'console';
  endpoint: string | undefined;
  samplingRatio: number;
  serviceName: string;
}

export function tracingSettings(env: NodeJS.ProcessEnv): TracingSettings {
  const exporter = (env.BEEP_OTEL_EXPORTER || 'none').toLowerCase();
  if (exporter !== 'none' && exporter !== 'otlp' && exporter !== 'console') {
    throw new Error(`[beep-router] BEEP_OTEL_EXPORTER must be none, otlp or console, got "${exporter}"`);
  }
  const samplingRatio = Number(env.BEEP_OTEL_SAMPLING_RATIO ?? '1');
  if (!Number.isFinite(samplingRatio) || samplingRatio < 0 || samplingRatio > 1) {
    throw new Error('[beep-router] BEEP_OTEL_SAMPLING_RATIO must be a number from 0 to 1');
  }
  return {
    exporter,
    endpoint: env.BEEP_OTEL_ENDPOINT || undefined,
    samplingRatio,
    serviceName: `${env.BEEP_SERVICE_NAME || 'beep'}-router`,
  };
}

/** Sets up the SDK (once, before the gateway starts); returns the gateway's `openTelemetry` option. */
export async function setUpTracing(settings: TracingSettings): Promise<{ traces: true } | undefined> {
  if (settings.exporter === 'none') return undefined;
  const { openTelemetrySetup } = await import('@graphql-hive/plugin-opentelemetry/setup');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { ConsoleSpanExporter, ParentBasedSampler, TraceIdRatioBasedSampler } = await import(
    '@opentelemetry/sdk-trace-base'
  );
  let exporter;
  if (settings.exporter === 'console') {
    exporter = new ConsoleSpanExporter();
  } else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
    const base = settings.endpoint?.replace(/\/+$/, '');
    exporter = new OTLPTraceExporter(base ? { url: `${base}/v1/traces` } : {});
  }
  openTelemetrySetup({
    contextManager: new AsyncLocalStorageContextManager(),
    resource: { serviceName: settings.serviceName },
    traces: { exporter, batching: { scheduledDelayMillis: 1000 } },
    // As the subgraphs: follow the caller's decision, sample new traces at the ratio. (The plugin's own
    // `samplingRate` takes 0 for "unset" and samples everything.)
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.samplingRatio) }),
  });
  return { traces: true };
}

const tracer = trace.getTracer('beep-router');

/** Runs `deliver` (the fan-out tier writing one event to its sockets) in a span continuing the
 * delivery's trace, whose context the subgraph put in the event's `extensions.traceparent`. */
export function deliveredInTrace(
  traceparent: string | undefined,
  attributes: Record<string, string | number>,
  deliver: () => void,
): void {
  // Untraced: outside whatever context the stream was opened in (a sampled-out subscriber's).
  if (traceparent === undefined) return otelContext.with(ROOT_CONTEXT, deliver);
  const parent = propagation.extract(ROOT_CONTEXT, { traceparent });
  const span = tracer.startSpan('fanout.deliver', { kind: SpanKind.CONSUMER, attributes }, parent);
  try {
    otelContext.with(trace.setSpan(parent, span), deliver);
  } finally {
    span.end();
  }
}
