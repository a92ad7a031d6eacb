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
import { getOperationAST, type ExecutionArgs, type ExecutionResult } from 'graphql';

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
  attributes: Record<string, string | number | boolean>,
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

// ------------------------------------------------------------------------------------------------
// the delivery context of each subscription event
//
// A tracing subgraph sends each event it renders with its delivery's context in the result's
// `extensions.traceparent` (kernel/tracing.py). An execution whose context holds a carrier gets it
// there, taken out of the result: the fan-out tier's shared streams (fanout.ts) have one each, and so
// does every subscription executed once per subscriber (usePerSubscriberDeliveryTracing).

export const TRACE_CARRIER = '__beepDeliveryTrace';
export interface TraceCarrier {
  traceparent?: string;
  /** The upstream result being handled is the subgraph's live signal (fanout.ts, docs/live-signal.md). */
  live?: boolean;
  /** With the signal, the cursor the upstream is live from (a stream that can replay). */
  liveFrom?: string;
}
/** The subgraph's mark on its live-signal answer (kernel/web/live_signal.py), taken out with the trace context. */
export const UPSTREAM_LIVE = 'beepLive';
export const UPSTREAM_LIVE_FROM = 'beepLiveFrom';
/** Marks the fan-out tier's listeners: what they deliver is covered by their shared stream's span. */
export const SHARED_DELIVERY = Symbol('beep.sharedDelivery');

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return value != null && typeof (value as any)[Symbol.asyncIterator] === 'function';
}

/** The gateway plugin taking each subscription event's delivery context (its trace context and the live
 * signal's mark) into its execution's carrier. Always installed: the live signal needs it without tracing. */
export function useDeliveryContexts(): any {
  return {
    onSubgraphExecute({ executionRequest }: { executionRequest: { context?: Record<string, unknown> } }) {
      const carrier = executionRequest.context?.[TRACE_CARRIER] as TraceCarrier | undefined;
      if (carrier === undefined) return undefined;
      return ({ result }: { result: unknown }) => {
        if (!isAsyncIterable(result)) return undefined;
        return {
          onNext({ result: next, setResult }: { result: ExecutionResult; setResult: (r: ExecutionResult) => void }) {
            const { traceparent, [UPSTREAM_LIVE]: live, [UPSTREAM_LIVE_FROM]: liveFrom, ...extensions } =
              next.extensions ?? {};
            carrier.traceparent = typeof traceparent === 'string' ? traceparent : undefined;
            carrier.live = live === true;
            carrier.liveFrom = live === true && typeof liveFrom === 'string' ? liveFrom : undefined;
            setResult({ ...next, extensions });
          },
        };
      };
    },
  };
}

/** Subscriptions the fan-out tier does not share (a field without an access check, the check failing,
 * BEEP_FANOUT=0) are executed once per subscriber: each event's delivery to its one socket gets the
 * span a shared stream's delivery gets, `fanout.deliver` with the same attributes, so one query finds
 * both. Installed only when tracing is on. */
export function usePerSubscriberDeliveryTracing(): any {
  return {
    onSubscribe({ args }: { args: ExecutionArgs }) {
      const context = args.contextValue as Record<string, unknown> | undefined;
      if (context == null || typeof context !== 'object') return undefined;
      const carrier: TraceCarrier = {};
      context[TRACE_CARRIER] = carrier; // this operation's own context (one per subscribe message)
      const root = getOperationAST(args.document, args.operationName)?.selectionSet.selections[0];
      const attributes = {
        'beep.field': root?.kind === 'Field' ? root.name.value : '',
        'beep.sockets': 1,
        'beep.shared': false,
      };
      return {
        onSubscribeResult({ result }: { result: unknown }) {
          if ((result as any)?.[SHARED_DELIVERY]) return undefined;
          return {
            onNext({ result: next, setResult }: { result: ExecutionResult; setResult: (r: ExecutionResult) => void }) {
              const traceparent = carrier.traceparent;
              if (traceparent === undefined) return;
              carrier.traceparent = undefined;
              deliveredInTrace(traceparent, attributes, () => setResult(next));
            },
          };
        },
      };
    },
  };
}
