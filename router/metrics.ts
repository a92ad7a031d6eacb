// Prometheus metrics of the router, on an internal port of their own.
//
// The public port (BEEP_ROUTER_PORT) faces the internet and never answers /metrics: the gateway's
// Prometheus plugin runs with `endpoint: false`, and its registry is served by a separate HTTP listener
// on BEEP_ROUTER_METRICS_PORT (BEEP_ROUTER_METRICS_HOST, default the router's host), which a Kubernetes
// Service or Ingress never exposes (the chart's PodMonitor scrapes the pod directly). Unset or 0: no
// metrics at all (the embedded `beep dev`). One process per router: the gateway runs without `--fork`
// here; with forks each worker would try to bind the same port.
//
// Names and labels follow Prometheus' conventions (base units, `_total` counters, snake_case labels)
// and hold no unbounded value: the operation *name* is chosen by the client, so it is never a label
// (a script could mint a series per request), nor the URL (query strings), nor request headers.
//   beep_router_graphql_requests_total{operation_type, outcome}        outcome: ok|user_error|server_error
//   beep_router_graphql_request_duration_seconds{operation_type}       queries and mutations
//   beep_router_http_request_duration_seconds{method, status_code}     GraphQL over HTTP
//   beep_router_subgraph_request_duration_seconds{subgraph, operation_type}
//   beep_router_subgraph_errors_total{subgraph, operation_type}        errors in subgraph responses
//   beep_router_fanout_access_checks_total{reason}                    the fan-out tier's questions to the
//                          subgraphs (reason: subscribe|reopen|access_change|periodic|feed_reconnect)
//   beep_router_fanout_feed_connections_total{subgraph}               access-change feeds (re)connected
//   beep_router_schema_changes_total, and Node's process_* / nodejs_* defaults.
import { createServer, type Server } from 'node:http';
import { getOperationAST, type DocumentNode, type GraphQLError } from 'graphql';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import {
  createCounter,
  createHistogram,
  type GatewayPlugin,
  type Logger,
  type PrometheusPluginOptions,
} from '@graphql-hive/gateway';
import type { FanoutObserver } from './fanout.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Errors that are Beep's fault, not the request's: a subgraph's masked bug, a subgraph that did not
// answer, the gateway's own masked failure ("Unexpected error." without a code).
const SERVER_CODES = new Set(['INTERNAL_SERVER_ERROR', 'DOWNSTREAM_SERVICE_ERROR', 'SUBREQUEST_HTTP_ERROR']);

export function outcomeOf(errors: readonly GraphQLError[] | undefined): 'ok' | 'user_error' | 'server_error' {
  if (!errors || errors.length === 0) return 'ok';
  for (const error of errors) {
    const code = error.extensions?.['code'];
    if (typeof code === 'string' ? SERVER_CODES.has(code) : error.message === 'Unexpected error.') {
      return 'server_error';
    }
  }
  return 'user_error';
}

function operationType(document: DocumentNode | undefined, name: string | null | undefined): string {
  if (!document) return 'unknown';
  return getOperationAST(document, name ?? undefined)?.operation ?? 'unknown';
}

export interface RouterMetrics {
  /** The gateway's `prometheus` option (its plugin, with Beep's names and labels). */
  prometheus: PrometheusPluginOptions;
  /** Beep's own counters of operations by outcome (the plugin's know no outcome). */
  plugin: GatewayPlugin;
  registry: Registry;
  /** What the fan-out tier reports (fanout.ts `FanoutObserver`). */
  fanout: FanoutObserver;
  start(): Promise<Server>;
}

export function routerMetrics(options: {
  port: number;
  host: string;
  publicPort: number;
  log: Logger;
}): RouterMetrics | undefined {
  const { port, host, publicPort, log } = options;
  if (!port) return undefined;
  if (port === publicPort) {
    throw new Error('[beep-router] BEEP_ROUTER_METRICS_PORT must differ from BEEP_ROUTER_PORT (it is internal)');
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'beep_router_graphql_requests_total',
    help: 'GraphQL operations the router finished, by type and outcome (subscriptions when they start).',
    labelNames: ['operation_type', 'outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'beep_router_graphql_request_duration_seconds',
    help: 'Time the router spent executing a query or mutation (planning, subgraph calls, merging).',
    labelNames: ['operation_type'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  const fanoutChecks = new Counter({
    name: 'beep_router_fanout_access_checks_total',
    help: "The fan-out tier's access questions to subgraphs (one per call), by why it asked.",
    labelNames: ['reason'],
    registers: [registry],
  });
  const feedConnections = new Counter({
    name: 'beep_router_fanout_feed_connections_total',
    help: 'Access-change feeds connected (a reconnect re-asks about every stream of that subgraph).',
    labelNames: ['subgraph'],
    registers: [registry],
  });
  const fanout: FanoutObserver = {
    checked: (reason) => fanoutChecks.labels(reason).inc(),
    feedConnected: (subgraph) => feedConnections.labels(subgraph).inc(),
  };

  const plugin = {
    onExecute({ args }: any) {
      const started = performance.now();
      const kind = operationType(args.document, args.operationName);
      return {
        onExecuteDone({ result }: any) {
          // An incremental (@defer) result is a stream: counted as it starts.
          const errors = result && !(Symbol.asyncIterator in result) ? result.errors : undefined;
          requests.labels(kind, outcomeOf(errors)).inc();
          duration.labels(kind).observe((performance.now() - started) / 1000);
        },
      };
    },
    onSubscribe({ args }: any) {
      const kind = operationType(args.document, args.operationName);
      return {
        onSubscribeResult({ result }: any) {
          const errors = result && !(Symbol.asyncIterator in result) ? result.errors : undefined;
          requests.labels(kind, outcomeOf(errors)).inc();
        },
        onSubscribeError() {
          requests.labels(kind, 'server_error').inc();
        },
      };
    },
  } as GatewayPlugin;

  const prometheus = {
    registry,
    endpoint: false, // never on the public port: see start()
    labels: { operationName: false, url: false, path: false, fetchRequestHeaders: false, fetchResponseHeaders: false },
    metrics: {
      // Beep's own counters above replace these (they carry the outcome).
      graphql_envelop_request: false,
      graphql_envelop_request_duration: false,
      graphql_envelop_request_time_summary: false,
      graphql_envelop_error_result: false,
      graphql_envelop_phase_parse: false,
      graphql_envelop_phase_validate: false,
      graphql_envelop_phase_context: false,
      graphql_envelop_phase_execute: false,
      graphql_envelop_phase_subscribe: false,
      graphql_envelop_deprecated_field: false,
      graphql_envelop_execute_resolver: false,
      // Its labels would be every outgoing URL (JWKS included): the subgraph metrics below say more.
      graphql_gateway_fetch_duration: false,
      graphql_envelop_schema_change: 'beep_router_schema_changes_total',
      graphql_yoga_http_duration: createHistogram({
        registry,
        histogram: {
          name: 'beep_router_http_request_duration_seconds',
          help: 'Time from a GraphQL HTTP request to its response.',
          labelNames: ['method', 'status_code'],
          buckets: LATENCY_BUCKETS,
        },
        fillLabelsFn: (_params: any, { request, response }: any) => ({
          method: request.method,
          status_code: String(response.status),
        }),
      }),
      graphql_gateway_subgraph_execute_duration: createHistogram({
        registry,
        histogram: {
          name: 'beep_router_subgraph_request_duration_seconds',
          help: 'Time a subgraph took to answer the router.',
          labelNames: ['subgraph', 'operation_type'],
          buckets: LATENCY_BUCKETS,
        },
        fillLabelsFn: ({ subgraphName, executionRequest }: any) => ({
          subgraph: subgraphName,
          operation_type: executionRequest.operationType ?? 'query',
        }),
      }),
      graphql_gateway_subgraph_execute_errors: createCounter({
        registry,
        counter: {
          name: 'beep_router_subgraph_errors_total',
          help: 'Errors in subgraph responses (a subgraph that did not answer counts here too).',
          labelNames: ['subgraph', 'operation_type'],
        },
        fillLabelsFn: ({ subgraphName, executionRequest }: any) => ({
          subgraph: subgraphName,
          operation_type: executionRequest.operationType ?? 'query',
        }),
      }),
    },
  } as unknown as PrometheusPluginOptions;

  async function start(): Promise<Server> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '').split('?')[0];
      if (request.method !== 'GET' || path !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error) => {
          log.error({ error: String(error) }, '[beep-router] metrics could not be collected');
          response.writeHead(500).end();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    server.unref(); // the gateway decides when the process ends
    log.info({ host, port }, '[beep-router] metrics on an internal port: GET /metrics');
    return server;
  }

  return { prometheus, plugin, registry, fanout, start };
}
