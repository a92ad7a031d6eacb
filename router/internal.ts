// The internal caller credential: subgraphs serve only Beep's own processes (subgraphs/kernel/web/internal.py,
// InternalCallerGuard), and this router proves it is one on every request it sends them.
//
// `Beep-Internal: v1.<hex HMAC-SHA256(BEEP_INTERNAL_SECRET, "beep-internal-caller.v1")>`, on HTTP fetches
// (queries, mutations, `_entities`) and on the upgrade request of the upstream WebSockets (subscriptions,
// the fan-out tier's shared streams). A per-deployment derived value rather than an expiring token: the
// transport's WebSocket clients reconnect after a subgraph restart with the headers they were built with,
// so an expiring credential would fail every subscription that outlived it. It is not the secret itself:
// it does not let its reader sign fan-out credentials or internal requests. Webhook executions and file
// downloads (useWebhookProxy, useMediaProxy) reach other routes, each with its own credential (the token
// in the webhook's path, the download URL's signature), and do not carry it.
import { createHmac } from 'node:crypto';
import type { TransportEntryAdditions } from '@graphql-hive/gateway';

export const CALLER_HEADER = 'beep-internal';

export function callerCredential(secret: string): string {
  return `v1.${createHmac('sha256', secret).update('beep-internal-caller.v1').digest('hex')}`;
}

/** Adds the credential to every subgraph's transport (the `*` entry, merged into each): HTTP requests'
 * headers, and the headers of the upstream WebSocket's upgrade request. */
export function withCallerCredential(entries: TransportEntryAdditions, secret: string | undefined): void {
  if (!secret) {
    throw new Error(
      '[beep-router] BEEP_INTERNAL_SECRET is required: subgraphs refuse requests without the credential derived from it',
    );
  }
  const header: [string, string] = [CALLER_HEADER, callerCredential(secret)];
  const wildcard = (entries['*'] ??= {}) as any;
  wildcard.headers = [...(wildcard.headers ?? []), header];
  const subscriptions = (wildcard.options ??= {}).subscriptions;
  if (subscriptions) subscriptions.headers = [...(subscriptions.headers ?? []), header];
}
