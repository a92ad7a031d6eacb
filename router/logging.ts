// The router's logs in the fields every Beep process writes (docs/logging.md): level, timestamp, service,
// container_id, stream, message, trace_id, span_id, request_id, then the entry's own attributes, personal
// data as tokens (logtokens.ts). Plus the access log: one line per request the router answered.
import { hostname } from 'node:os';
import { trace } from '@opentelemetry/api'; // the gateway's own dependency; read-only here
import { ConsoleLogWriter, type GatewayPlugin } from '@graphql-hive/gateway';
import { LogTokenizer } from './logtokens.ts';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
type Attrs = Record<string, unknown> | null | undefined;
interface Writer {
  write(level: Level, attrs: Attrs, msg: string | null | undefined): void | Promise<void>;
}

const LEVELS: Record<Level, string> = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warning', error: 'error' };
// Kubernetes sets HOSTNAME to the pod's name.
const CONTAINER_ID = process.env['HOSTNAME'] || hostname();

function spanIds(): { trace_id: string | null; span_id: string | null } {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx)
    ? { trace_id: ctx.traceId, span_id: ctx.spanId }
    : { trace_id: null, span_id: null };
}

/** JSON lines in Beep's fields. */
export class BeepJsonLogWriter implements Writer {
  constructor(
    private readonly service: string,
    private readonly tokens: LogTokenizer,
  ) {}

  write(level: Level, attrs: Attrs, msg: string | null | undefined): void {
    const { requestId, stream, ...rest } = (attrs ?? {}) as Record<string, unknown>;
    const entry = {
      level: LEVELS[level],
      timestamp: new Date().toISOString(),
      service: this.service,
      container_id: CONTAINER_ID,
      stream: typeof stream === 'string' ? stream : 'app',
      message: this.tokens.scrub(msg ?? ''),
      ...spanIds(),
      request_id: typeof requestId === 'string' ? requestId : null,
      ...(this.tokens.fields(rest) as Record<string, unknown>),
    };
    process.stdout.write(JSON.stringify(entry) + '\n');
  }
}

/** The gateway's readable lines (BEEP_ROUTER_LOG_FORMAT=pretty), personal data tokenised all the same. */
export class TokenizingConsoleWriter implements Writer {
  readonly #inner = new ConsoleLogWriter();
  constructor(private readonly tokens: LogTokenizer) {}

  write(level: Level, attrs: Attrs, msg: string | null | undefined): void | Promise<void> {
    return this.#inner.write(level, this.tokens.fields(attrs) as any, msg ? this.tokens.scrub(msg) : msg);
  }
}

interface Access {
  started: number;
  operation?: string;
}

/** A line in the access stream per request: method, path, operation name, status, duration, client
 * address (tokenised). Never the query text or its variables. Probes only at debug. */
export function useAccessLog(clientAddress: (context: unknown) => string | undefined): GatewayPlugin {
  const found = new WeakMap<Request, Access>();
  const PROBES = new Set(['/healthcheck', '/readiness', '/metrics']);
  return {
    onRequest({ request }) {
      found.set(request, { started: performance.now() });
    },
    onParams({ request, params }) {
      const access = found.get(request);
      if (access && typeof params.operationName === 'string' && /^[_A-Za-z]\w{0,99}$/.test(params.operationName)) {
        access.operation = params.operationName;
      }
    },
    onResponse({ request, response, serverContext }) {
      const access = found.get(request);
      const path = new URL(request.url).pathname;
      const log = (serverContext as { log?: { info: Function; debug: Function } }).log;
      if (!access || !log) return;
      const write = PROBES.has(path) ? log.debug : log.info;
      write.call(
        log,
        {
          stream: 'access',
          method: request.method,
          path,
          operation: access.operation ?? null,
          status: response.status,
          duration_ms: Math.round((performance.now() - access.started) * 100) / 100,
          client_ip: clientAddress(serverContext) ?? null,
        },
        `${request.method} ${path} ${response.status}`,
      );
    },
  } as GatewayPlugin;
}
