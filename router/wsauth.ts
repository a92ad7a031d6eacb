// WebSocket authentication at `connection_init` (graphql-transport-ws).
//
// Clients put their token in the connection_init payload under many spellings: `authorization` (ours),
// `Authorization` (most client examples, copied from HTTP), `authToken` or `token` (Apollo's and others'
// docs, often without the "Bearer " prefix). Every one of them is rewritten to `authorization: "Bearer …"`
// before the gateway sees the payload, so the JWT plugin, the headers forwarded to subgraphs and the
// fan-out tier all read one key. A token that is present must verify: otherwise the socket is closed with
// 4403 Forbidden instead of being acknowledged (and every subscription then failing UNAUTHENTICATED); when
// the check itself cannot run (the issuer's JWKS unreachable), 4500.
//
// The gateway CLI starts its graphql-ws server without an `onConnect` hook and exposes none, so the check
// sits in front of it: every socket of a `ws` server gets its `message` listeners wrapped before the
// `connection` event reaches graphql-ws. Messages keep their order; those after connection_init wait
// until it is verified (a client that waits for connection_ack never notices).
import { WebSocketServer, type WebSocket } from 'ws';

/** The keys a client may put its token under, in order of preference (compared without case). */
const TOKEN_KEYS = ['authorization', 'authtoken', 'token'];
const FORBIDDEN = 4403;
const INTERNAL_ERROR = 4500; // graphql-ws's code for a server-side failure

/** The payload with its token, whatever the key, under `authorization` as "Bearer <token>". */
export function normalizeConnectionParams(payload: Record<string, unknown>): Record<string, unknown> {
  const found = TOKEN_KEYS.map((wanted) =>
    Object.keys(payload).find((key) => key.toLowerCase() === wanted && payload[key] != null && payload[key] !== ''),
  ).find((key) => key !== undefined);
  const rest = Object.fromEntries(
    Object.entries(payload).filter(([key]) => !TOKEN_KEYS.includes(key.toLowerCase())),
  );
  if (found === undefined) return rest;
  const value = payload[found];
  if (typeof value !== 'string') return { ...rest, authorization: value }; // refused as it is
  const trimmed = value.trim();
  if (/^bearer\s/i.test(trimmed)) return { ...rest, authorization: `Bearer ${trimmed.slice(6).trim()}` };
  if (found.toLowerCase() === 'authorization' || /\s/.test(trimmed)) return { ...rest, authorization: value };
  return { ...rest, authorization: `Bearer ${trimmed}` }; // a bare token (authToken, token)
}

/** Whether an `authorization` value verifies: "Bearer <jwt>" signed by a trusted issuer, not expired. */
export type VerifyAuthorization = (value: unknown) => Promise<boolean>;

type Listener = (data: unknown, isBinary: boolean) => unknown;

function guard(socket: WebSocket, verify: VerifyAuthorization): void {
  let initSeen = false;
  let gate: Promise<boolean> = Promise.resolve(true); // resolves false once the socket is refused
  const on = socket.on.bind(socket) as (event: string, listener: (...args: any[]) => void) => WebSocket;
  (socket as any).on = (event: string, listener: (...args: any[]) => void) => {
    if (event !== 'message') return on(event, listener);
    const forward = listener as Listener;
    return on('message', (data: unknown, isBinary: boolean) => {
      if (!initSeen) {
        let message: any;
        try {
          message = JSON.parse(String(data));
        } catch {
          message = undefined;
        }
        if (message?.type === 'connection_init') {
          initSeen = true;
          const payload =
            message.payload && typeof message.payload === 'object' && !Array.isArray(message.payload)
              ? normalizeConnectionParams(message.payload)
              : undefined;
          const rewritten = payload ? JSON.stringify({ ...message, payload }) : String(data);
          // A verification that fails to run (the JWKS unreachable) is the server's fault, not the client's.
          let verdict: 'ok' | 'refused' | 'failed' = 'failed';
          gate = verify(payload?.['authorization']).then(
            (ok) => {
              verdict = ok ? 'ok' : 'refused';
              return ok;
            },
            () => false,
          );
          void gate.then((ok) => {
            if (ok) return void forward(rewritten, false);
            if (verdict === 'refused') return socket.close(FORBIDDEN, 'Forbidden');
            socket.close(INTERNAL_ERROR, 'Internal server error');
          });
          return;
        }
      }
      void gate.then((ok) => {
        if (ok) void forward(data, isBinary);
      });
    });
  };
}

/** Guards every socket of every `ws` server of this process (the gateway's, at /graphql). */
export function guardConnectionInit(verify: VerifyAuthorization): void {
  const proto = WebSocketServer.prototype as any;
  if (proto.__beepGuarded) return;
  proto.__beepGuarded = true;
  const handleUpgrade = proto.handleUpgrade;
  proto.handleUpgrade = function (req: unknown, socket: unknown, head: unknown, cb: (ws: WebSocket, req: unknown) => void) {
    return handleUpgrade.call(this, req, socket, head, (ws: WebSocket, request: unknown) => {
      guard(ws, verify);
      cb(ws, request);
    });
  };
}
