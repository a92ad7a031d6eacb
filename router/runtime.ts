// The query planner and executor (BEEP_ROUTER_RUNTIME, router/README.md).
//
// `router` (the default) plans and executes queries and mutations with Hive Router's runtime (its Rust query
// planner and executor, @graphql-hive/router-runtime): ~0.7 ms less router CPU per message sent at 100
// msg/s than the gateway's JavaScript stitching runtime (bench/README.md). Subscriptions stay on the
// stitching runtime. Read in router-runtime 1.4.23, one execution context serves every event of a
// subscription (an event the subgraph answers with an error and no data goes out with the previous event's
// data, and errors pile up over the events that follow), and a subscription plan's entity fetches after
// its first (`rest`) are never run. A live stream is one upstream execution per channel behind the fan-out
// tier anyway, so the planner's gain there would be small.
import type { UnifiedGraphHandler } from '@graphql-mesh/fusion-runtime';
import { handleFederationSupergraph } from '@graphql-mesh/fusion-runtime';
import { createDefaultExecutor, type ExecutionRequest } from '@graphql-mesh/transport-common';
import { unifiedGraphHandler as hiveRouterRuntime } from '@graphql-hive/router-runtime';
import { getOperationAST } from 'graphql';

export type RuntimeName = 'router' | 'stitching';

export function runtimeNamed(name: string): RuntimeName {
  if (name !== 'router' && name !== 'stitching') {
    throw new Error(`[beep-router] BEEP_ROUTER_RUNTIME must be router or stitching, got "${name}"`);
  }
  return name;
}

function isSubscription(request: ExecutionRequest): boolean {
  if (request.operationType !== undefined) return request.operationType === 'subscription';
  return getOperationAST(request.document, request.operationName)?.operation === 'subscription';
}

// Both runtimes built over the same supergraph and transports: the stitched schema serves validation,
// introspection's shape and subscriptions; Hive Router's executor everything else.
export const routerForRequests: UnifiedGraphHandler = async (opts) => {
  const [router, stitching] = await Promise.all([hiveRouterRuntime(opts), handleFederationSupergraph(opts)]);
  const routerExecutor = router.executor;
  if (routerExecutor === undefined) throw new Error('[beep-router] Hive Router runtime built no executor');
  const stitchingExecutor = createDefaultExecutor(stitching.unifiedGraph);
  return {
    ...stitching,
    executor: (request: ExecutionRequest) =>
      isSubscription(request) ? stitchingExecutor(request) : routerExecutor(request),
    overrideLabels: router.overrideLabels,
  };
};
