// The subgraphs' WebSocket transport (@graphql-mesh/transport-ws), watched for dropped connections.
//
// graphql-ws's client reconnects by itself after its socket drops and sends each of its subscriptions
// again with the variables it was first sent with. For a shared stream of the fan-out tier that means
// replaying from the cursor the stream was *opened* at (or, opened without one, going on live and losing
// what was published meanwhile). So an upstream connection that had been established and closes in any
// way but a normal close (the subgraph's process died or restarted, the network failed) is reported at
// once, well before the client's first retry (graphql-ws waits at least 1.3 s), and the tier reopens the
// subgraph's streams from their last cursors (fanout.ts, `upstreamDropped`). A normal close (1000) is the
// client's own idle close or the gateway disposing it; application codes (4xxx) end the subscriptions
// with an error, which the tier's streams handle as a failed upstream.
import wsTransport from '@graphql-mesh/transport-ws';
import type { Client } from 'graphql-ws';

type GetSubgraphExecutor = typeof wsTransport.getSubgraphExecutor;

/** Whether a closed upstream connection was lost rather than closed on purpose. */
export function lostConnection(event: unknown): boolean {
  const code = (event as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'number') return true; // an error, not a close frame
  if (code === 1000) return false;
  return code < 4000 || code === 4499; // 4499: graphql-ws terminated a socket that stopped answering
}

/** The WebSocket transport, telling `onLost` the subgraph's name when one of its connections is lost. */
export function watchedWebSocketTransport(onLost: (subgraph: string) => void): { getSubgraphExecutor: GetSubgraphExecutor } {
  return {
    getSubgraphExecutor(payload, onClient) {
      const subgraph = payload.transportEntry.subgraph;
      return wsTransport.getSubgraphExecutor(payload, (client: Client) => {
        onClient?.(client);
        let connected = false;
        client.on('connected', () => {
          connected = true;
        });
        // Only a connection that was up: a connect that fails is retried by the client (no subscription
        // was sent on it), and reporting it would reopen the streams in a loop while the subgraph is down.
        client.on('closed', (event) => {
          const wasConnected = connected;
          connected = false;
          if (wasConnected && lostConnection(event)) onLost(subgraph);
        });
      });
    },
  };
}
