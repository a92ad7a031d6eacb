// Hive Gateway configuration for Beep's federation router.
//
// Loaded by `hive-gateway supergraph` when run with cwd = router/. Every setting comes from an
// environment variable; see README.md for the list and the reasons behind the non-default choices.
import { createFetch } from '@whatwg-node/fetch';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createRemoteJwksSigningKeyProvider,
  defineConfig,
  Logger,
  useJWT,
  type ExtractTokenFunction,
  type GatewayPlugin,
  type TransportEntryAdditions,
} from '@graphql-hive/gateway';
import httpTransport from '@graphql-mesh/transport-http';
import { corsPolicy, useVaryOrigin } from './cors.ts';
import { DEFAULT_LIST_SIZE, DEFAULT_MAX_COST, useCostLimit } from './cost.ts';
import { FanoutTier, LIVE_CONTEXT_KEY, useSharedSubscriptions } from './fanout.ts';
import { watchedWebSocketTransport } from './upstream.ts';
import { useVariableCheck } from './variables.ts';
import { routerForRequests, runtimeNamed } from './runtime.ts';
import { withCallerCredential } from './internal.ts';
import { guardConnectionInit, type VerifyAuthorization } from './wsauth.ts';
import { routerMetrics } from './metrics.ts';
import { BeepJsonLogWriter, TokenizingConsoleWriter, useAccessLog } from './logging.ts';
import { generateKey, LogTokenizer } from './logtokens.ts';
import {
  setUpTracing,
  tracingSettings,
  useDeliveryContexts,
  usePerSubscriberDeliveryTracing,
} from './tracing.ts';
import jsonwebtoken from 'jsonwebtoken';
import {
  GraphQLError,
  Kind,
  type ASTNode,
  type FragmentDefinitionNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';

const env = process.env;

// ---------------------------------------------------------------------------------------------
// env helpers (fail fast at startup on malformed values instead of running with a surprise)

function str(name: string, fallback?: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : fallback;
}

function required(name: string): string {
  const v = str(name);
  if (!v) throw new Error(`[beep-router] environment variable ${name} is required`);
  return v;
}

function int(name: string, fallback: number): number {
  const v = str(name);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`[beep-router] ${name} must be a non-negative integer, got "${v}"`);
  return Number(v);
}

function bool(name: string, fallback: boolean): boolean {
  const v = str(name);
  if (v === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`[beep-router] ${name} must be 0/1/true/false, got "${v}"`);
}

function httpUrl(name: string, value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new Error(`[beep-router] ${name} is not a valid URL: "${value}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`[beep-router] ${name} must be an http(s):// URL, got "${value}"`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// basic settings

// Default: <repo>/supergraph/supergraph.graphql, wherever the gateway is started from. A value
// given in BEEP_SUPERGRAPH is used as-is (relative = relative to the working directory).
const routerDir = dirname(fileURLToPath(import.meta.url));
const supergraphPath = str('BEEP_SUPERGRAPH') ?? resolve(routerDir, '../supergraph/supergraph.graphql');
const port = int('BEEP_ROUTER_PORT', 4000);
const host = str('BEEP_ROUTER_HOST', '127.0.0.1')!;

const maxDepth = int('BEEP_ROUTER_MAX_DEPTH', 12);
const maxTokens = int('BEEP_ROUTER_MAX_TOKENS', 2000);
const maxAliases = int('BEEP_ROUTER_MAX_ALIASES', 30);
const maxCost = int('BEEP_ROUTER_MAX_COST', DEFAULT_MAX_COST); // demand control: cost.ts
const dedupe = bool('BEEP_ROUTER_DEDUPE', true);
const laboratory = bool('BEEP_ROUTER_LABORATORY', true);

const logFormat = str('BEEP_ROUTER_LOG_FORMAT', 'json')!;
if (logFormat !== 'json' && logFormat !== 'pretty') {
  throw new Error(`[beep-router] BEEP_ROUTER_LOG_FORMAT must be "json" or "pretty", got "${logFormat}"`);
}
const logLevel = str('BEEP_ROUTER_LOG_LEVEL');
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
  throw new Error(`[beep-router] BEEP_ROUTER_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
}
// Personal data in logs as tokens (logging.ts, docs/logging.md), with the key every Beep process holds.
const logTokenKey = str('BEEP_LOG_TOKEN_KEY');
const logTokens = new LogTokenizer(logTokenKey ?? generateKey());
const log = new Logger({
  ...(logLevel ? { level: logLevel as (typeof LOG_LEVELS)[number] } : {}),
  writers: [
    logFormat === 'json'
      ? new BeepJsonLogWriter(`${str('BEEP_SERVICE_NAME', 'beep')}-router`, logTokens)
      : new TokenizingConsoleWriter(logTokens),
  ],
});
if (!logTokenKey) log.warn('[beep-router] BEEP_LOG_TOKEN_KEY is not set: this process\'s log tokens cannot be revealed');

// The hive-gateway CLI also reads the generic PORT / HOST variables (and --port / --host), and
// those win over this file. Say so instead of silently listening somewhere else.
for (const [generic, ours, value] of [
  ['PORT', 'BEEP_ROUTER_PORT', String(port)],
  ['HOST', 'BEEP_ROUTER_HOST', host],
] as const) {
  const v = str(generic);
  if (v !== undefined && v !== value) {
    log.warn(`[beep-router] ${generic}=${v} is set and overrides ${ours}=${value}; unset ${generic}`);
  }
}

// CORS allow-list (cors.ts): BEEP_ROUTER_CORS_ORIGINS, by default only the router's public origin.
const publicUrl = httpUrl('BEEP_PUBLIC_URL', str('BEEP_PUBLIC_URL') ?? `http://${host}:${port}`);
const corsSetting = corsPolicy(str('BEEP_ROUTER_CORS_ORIGINS'), publicUrl);
if (corsSetting.allowed === '*') log.warn('[beep-router] BEEP_ROUTER_CORS_ORIGINS=*: any website may call the API');

// ---------------------------------------------------------------------------------------------
// subgraph transport: URL overrides, upstream WebSocket subscriptions, dedupe toggle

/** Subgraph names as composed into the supergraph (`@join__graph(name: "...")`). */
function subgraphNames(path: string): string[] {
  try {
    const sdl = readFileSync(path, 'utf8');
    return [...sdl.matchAll(/@join__graph\(\s*name:\s*"([^"]+)"/g)].map((m) => m[1]!);
  } catch {
    return [];
  }
}

const envNameOf = (subgraph: string) => subgraph.toUpperCase().replace(/[^A-Z0-9]/g, '_');

const transportEntries: TransportEntryAdditions = {
  // Applies to every subgraph. No `location` here: the wildcard entry is merged last and would
  // override per-subgraph URLs. Subscriptions go upstream over graphql-transport-ws at the
  // subgraph's own URL (http(s) -> ws(s) is switched by the transport). The client's
  // authorization (HTTP header, or a WebSocket client's connection_init payload, which the
  // gateway merges into context.headers) is sent in the upstream connection_init payload.
  // An empty value is dropped, so anonymous clients send `{}`. Each distinct payload gets its
  // own upstream socket.
  '*': {
    options: {
      ...(dedupe ? {} : { deduplicateInflightRequests: false }),
      subscriptions: {
        kind: 'ws',
        options: {
          connectionParams: {
            authorization: '{context.headers.authorization}',
            // The live signal (fanout.ts): set by the router itself, never by a client.
            'beep-live-signal': `{context.${LIVE_CONTEXT_KEY}}`,
          },
        },
      },
    },
  },
};

const PREFIX = 'BEEP_SUBGRAPH_URL_';
const knownSubgraphs = subgraphNames(supergraphPath);
for (const [key, raw] of Object.entries(env)) {
  if (!key.startsWith(PREFIX) || !raw?.trim()) continue;
  const suffix = key.slice(PREFIX.length);
  const url = httpUrl(key, raw.trim());
  const matches = knownSubgraphs.filter((n) => envNameOf(n) === suffix);
  if (matches.length > 1) {
    throw new Error(`[beep-router] ${key} is ambiguous: matches subgraphs ${matches.join(', ')}`);
  }
  const name = matches[0] ?? suffix.toLowerCase();
  if (matches.length === 0) {
    log.warn(
      { env: key, subgraph: name, known: knownSubgraphs },
      `[beep-router] ${key}: no subgraph "${name}" in ${supergraphPath}; the override applies if one appears`,
    );
  }
  transportEntries[name] = { ...transportEntries[name], location: url };
}

// Every subgraph request carries the internal caller credential (internal.ts); required.
withCallerCredential(transportEntries, str('BEEP_INTERNAL_SECRET'));

function clientAddress(context: unknown): string | undefined {
  return (context as { req?: { socket?: { remoteAddress?: string } } })?.req?.socket?.remoteAddress;
}

function forwardedFor(incoming: string | undefined, context: unknown): string | undefined {
  const peer = clientAddress(context);
  if (!peer) return incoming;
  return incoming ? `${incoming}, ${peer}` : peer;
}

// ---------------------------------------------------------------------------------------------
// JWT: verify RS256 access tokens against the users service's JWKS

// Several identity providers may be trusted at once (the built-in issuer and Keycloak): BEEP_JWKS_URL
// and BEEP_JWT_ISSUER take comma-separated lists. A token's kid is looked up in each JWKS in turn.
const list = (name: string) =>
  required(name)
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
const jwksUrls = list('BEEP_JWKS_URL').map((u) => httpUrl('BEEP_JWKS_URL', u));
const jwtIssuers = list('BEEP_JWT_ISSUER');
const jwtAudience = str('BEEP_JWT_AUDIENCE', 'beep')!;

const jwksProviders = jwksUrls.map((jwksUri) =>
  createRemoteJwksSigningKeyProvider({
    jwksUri,
    cache: true, // keys are cached by kid (10 min); an unknown kid triggers a refetch
    rateLimit: true, // at most 10 JWKS fetches per minute (unknown kids cannot hammer the issuer)
    timeout: 5000,
  }),
);

/** A key that can never verify an RS256 signature: jsonwebtoken then reports "Unauthenticated". */
const NO_SUCH_KEY = 'beep-router: no signing key with this kid';

// A token whose kid is in no JWKS is a bad token (401), not a gateway failure: the
// stock provider error would surface as a masked 500 "Unexpected error".
// Which JWKS holds a kid, once seen: tokens of the second issuer then never make the first one refetch
// its keys (a miss triggers a refetch, rate-limited per JWKS).
const kidOwner = new Map<string, (kid?: string) => Promise<string>>();

// Signing keys handed to jsonwebtoken parsed, not as PEM text: given text, it parses it on every
// verification (createPublicKey: OpenSSL's decoders, `init (native)` in router A's profile, ~8% of its
// busy time under the mixed load, bench/README.md). Keyed by the PEM itself, so a rotated key is a new
// entry; whether a kid is still valid stays the JWKS provider's answer.
const parsedKeys = new Map<string, KeyObject>();
function parsedKey(pem: string): KeyObject {
  let key = parsedKeys.get(pem);
  if (key === undefined) {
    if (parsedKeys.size >= 64) parsedKeys.clear();
    key = createPublicKey(pem);
    parsedKeys.set(pem, key);
  }
  return key;
}

const signingKeyProvider = async (kid?: string): Promise<KeyObject | string> => {
  const known = kid ? kidOwner.get(kid) : undefined;
  if (known) return parsedKey(await known(kid));
  for (const jwks of jwksProviders) {
    try {
      const key = parsedKey(await jwks(kid));
      if (kid) kidOwner.set(kid, jwks);
      return key;
    } catch (e) {
      const name = (e as Error)?.name;
      if (name !== 'SigningKeyNotFoundError' && name !== 'JwksRateLimitError') throw e;
    }
  }
  return NO_SUCH_KEY;
};

// `Bearer <jwt>`, the scheme in any case (RFC 9110 §11.1: schemes are case-insensitive; the subgraphs
// accept `bearer` too). Any other scheme is refused: 401 UNAUTHENTICATED (useBeepJwt).
function bearer(value: string): { prefix: string; token: string } {
  const [prefix, token] = value.trim().split(/\s+/, 2);
  if (prefix?.toLowerCase() !== 'bearer') throw new GraphQLError('Invalid JWT authentication token prefix.');
  if (!token) throw new GraphQLError('Authentication header was set, but token is missing.');
  return { prefix, token };
}

const fromAuthorizationHeader: ExtractTokenFunction = ({ request }) => {
  const value = request?.headers.get('authorization');
  return value == null ? undefined : bearer(value);
};

// WebSocket clients send `{"authorization": "Bearer <jwt>"}` as the graphql-transport-ws
// connection_init payload (any other spelling, `Authorization`, `authToken`, `token`, is rewritten to it
// before the gateway reads the payload: wsauth.ts). The stock connection-params extractor would keep the
// "Bearer " prefix, so this one mirrors the HTTP header extractor (`bearer`, the scheme in any case).
const fromConnectionParams: ExtractTokenFunction = ({ serverContext }) => {
  const params = (serverContext as { connectionParams?: unknown })?.connectionParams;
  if (!params || typeof params !== 'object') return undefined;
  const value = (params as Record<string, unknown>)['authorization'];
  if (value == null || value === '') return undefined;
  if (typeof value !== 'string') throw new GraphQLError('Invalid JWT authentication token.');
  return bearer(value);
};

const tokenVerification = {
  algorithms: ['RS256' as const],
  issuer: jwtIssuers.length === 1 ? jwtIssuers[0]! : (jwtIssuers as [string, ...string[]]),
  audience: jwtAudience,
};

// A WebSocket's connection_init is refused (4403) when it carries a token that does not verify, as the
// JWT plugin would refuse each of its operations; no token is an anonymous socket (sign-up, sign-in).
const verifyAuthorization: VerifyAuthorization = async (value) => {
  if (value == null || value === '') return true;
  if (typeof value !== 'string') return false;
  const [prefix, token] = value.trim().split(/\s+/, 2);
  if (prefix?.toLowerCase() !== 'bearer' || !token) return false;
  const decoded = jsonwebtoken.decode(token, { complete: true });
  if (!decoded || typeof decoded === 'string') return false;
  const key = await signingKeyProvider(decoded.header.kid);
  return new Promise((resolve) => jsonwebtoken.verify(token, key, tokenVerification, (err) => resolve(!err)));
};
guardConnectionInit(verifyAuthorization);

const jwtPlugin = useJWT({
  signingKeyProviders: [signingKeyProvider],
  // Connection params first: the gateway lets them override upgrade-request headers in
  // context.headers, which is what gets forwarded upstream — verify the same value.
  tokenLookupLocations: [fromConnectionParams, fromAuthorizationHeader],
  tokenVerification,
  // Anonymous requests are allowed (sign-up / sign-in); a token that is present must be valid.
  reject: { missingToken: false, invalidToken: true },
  // Subgraphs get the raw Authorization header and verify it themselves; don't also inject the
  // decoded payload into every upstream request's `extensions`.
  forward: { payload: false, token: false },
});

function unauthenticated(e: unknown, overWebSocket: boolean): never {
  if (e instanceof GraphQLError) {
    const { http: _http, ...extensions } = e.extensions ?? {};
    throw new GraphQLError(e.message, {
      extensions: {
        ...extensions,
        code: 'UNAUTHENTICATED',
        // Yoga turns `http` into the HTTP status and strips it; over a WebSocket it would be
        // sent to the client verbatim, so leave it out there.
        ...(overWebSocket ? {} : { http: { status: 401 } }),
      },
    });
  }
  throw e; // internal failures (e.g. JWKS unreachable) stay masked server errors
}

function rethrowAsUnauthenticated<F extends ((payload: any) => any) | undefined>(hook: F): F {
  if (!hook) return hook;
  return ((payload: any) => {
    // graphql-ws operations always have a `connectionParams` key in their context.
    const overWebSocket = !!payload?.context && 'connectionParams' in payload.context;
    const fail = (e: unknown) => unauthenticated(e, overWebSocket);
    try {
      const r = hook(payload);
      return r && typeof r.then === 'function' ? r.then(undefined, fail) : r;
    } catch (e) {
      fail(e);
    }
  }) as F;
}

/**
 * The JWT plugin's rejections carry only `extensions.http.status`; Beep clients key off
 * `extensions.code === "UNAUTHENTICATED"`. Wrap the hooks of the Yoga JWT plugin that the
 * gateway's JWT plugin installs so every GraphQLError they throw gets that code (and HTTP 401).
 */
function useBeepJwt(): GatewayPlugin {
  const plugin = jwtPlugin as any;
  let wrapped = 0;
  return {
    ...plugin,
    onPluginInit(payload: any) {
      plugin.onPluginInit({
        ...payload,
        addPlugin(inner: any) {
          wrapped++;
          payload.addPlugin({
            ...inner,
            onRequestParse: rethrowAsUnauthenticated(inner.onRequestParse),
            onContextBuilding: rethrowAsUnauthenticated(inner.onContextBuilding),
          });
        },
      });
      if (wrapped !== 1) throw new Error('[beep-router] JWT plugin layout changed; review useBeepJwt()');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// depth and alias limits
//
// The gateway has a built-in `maxDepth` (graphql-armor), but it counts every fragment spread as
// two extra levels, so `{ me { ...UserFields } }` (depth 2) counts as 4 and fragment-heavy
// client queries hit the limit early. Both rules below count through fragments as if they were
// written inline. Introspection (`__schema`, `__type`) is exempt from the depth limit so the
// Laboratory keeps working.

type Walk = { depth: number; aliases: number };

function measure(context: ValidationContext, root: ASTNode): Walk {
  const fragments = new Map<string, Walk>();
  const visit = (node: ASTNode, visiting: Set<string>): Walk => {
    if (node.kind === Kind.FRAGMENT_SPREAD) {
      const name = node.name.value;
      if (visiting.has(name)) return { depth: 0, aliases: 0 }; // cycles: NoFragmentCyclesRule
      let w = fragments.get(name);
      if (!w) {
        const frag: FragmentDefinitionNode | null | undefined = context.getFragment(name);
        visiting.add(name);
        w = frag ? visit(frag, visiting) : { depth: 0, aliases: 0 };
        visiting.delete(name);
        fragments.set(name, w);
      }
      return w;
    }
    let depth = 0;
    let aliases = 0;
    if ('selectionSet' in node && node.selectionSet) {
      for (const sel of node.selectionSet.selections) {
        const w = visit(sel, visiting);
        depth = Math.max(depth, w.depth);
        aliases += w.aliases;
      }
    }
    if (node.kind === Kind.FIELD) {
      const introspection = node.name.value === '__schema' || node.name.value === '__type';
      return { depth: introspection ? 0 : depth + 1, aliases: aliases + (node.alias ? 1 : 0) };
    }
    return { depth, aliases };
  };
  return visit(root, new Set());
}

function limitsRule(maxDepth: number, maxAliases: number): ValidationRule {
  return (context: ValidationContext) => ({
    OperationDefinition(op) {
      const { depth, aliases } = measure(context, op);
      if (maxDepth && depth > maxDepth) {
        context.reportError(
          new GraphQLError(`Query depth limit of ${maxDepth} exceeded, found ${depth}.`, {
            nodes: [op],
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
          }),
        );
      }
      if (maxAliases && aliases > maxAliases) {
        context.reportError(
          new GraphQLError(`Aliases limit of ${maxAliases} exceeded, found ${aliases}.`, {
            nodes: [op],
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
          }),
        );
      }
    },
  });
}

function useDepthAndAliasLimits(maxDepth: number, maxAliases: number): GatewayPlugin {
  return {
    onValidate({ addValidationRule }: { addValidationRule: (rule: ValidationRule) => void }) {
      addValidationRule(limitsRule(maxDepth, maxAliases));
    },
  } as GatewayPlugin;
}

// ---------------------------------------------------------------------------------------------
// JSON depth: variables and extensions nested deeper than any Beep input (the subgraphs refuse the same,
// kernel/wellformed.py) are refused before anything walks them recursively (forwarding 100,000 levels
// ended in a stack overflow: a 500).

const MAX_JSON_DEPTH = 60; // of `variables`; the subgraphs allow 64 for the whole body that wraps them

function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}

function useJsonDepthLimit(): GatewayPlugin {
  return {
    onParams({ params }: { params: { variables?: unknown; extensions?: unknown } }) {
      if (nestedDeeperThan(params.variables, MAX_JSON_DEPTH) || nestedDeeperThan(params.extensions, MAX_JSON_DEPTH)) {
        throw new GraphQLError(`The request's JSON is nested more than ${MAX_JSON_DEPTH} levels deep.`, {
          extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } },
        });
      }
    },
  } as GatewayPlugin;
}

// ---------------------------------------------------------------------------------------------
// file uploads (GraphQL multipart request spec)
//
// The router parses multipart requests and forwards each file to the subgraph that owns the field, as a
// multipart request of its own. Limits apply while parsing (busboy), before anything is buffered past
// them: each file at most BEEP_ROUTER_MAX_FILE_BYTES (20 MiB: a message's attachments together, which
// BEEP_ATTACHMENT_MAX_BYTES sets in the subgraphs), at most BEEP_ROUTER_MAX_FILES files (10, a message's)
// per request; a declared body at most BEEP_ROUTER_MAX_REQUEST_BYTES (21 MiB). GraphQL Yoga, under the
// gateway, also cuts every body at 25,000,000 bytes (its default, which the gateway does not expose), so
// values past that have no effect. A browser can send
// multipart/form-data cross-site without a CORS preflight (an HTML form can), so a multipart request must
// carry one of PREFLIGHT_HEADERS, which a form cannot set; subgraphs check the same (kernel/web/app.py).
// Any other POST body (a JSON GraphQL request: at most 2,000 tokens and a message's variables) declared
// larger than BEEP_ROUTER_MAX_JSON_BYTES (1 MiB) is refused before it is read. A body that arrives more
// slowly than BEEP_ROUTER_REQUEST_TIMEOUT_SECONDS (60: a 20 MiB upload needs ~3 Mbit/s) allow for the
// whole request is cut by Node's HTTP server with 408, so a client that declares 20 MB and sends 1 KB
// holds its connection for that long at most.

const maxFileBytes = int('BEEP_ROUTER_MAX_FILE_BYTES', 20 * 1024 * 1024);
const maxFiles = int('BEEP_ROUTER_MAX_FILES', 10);
const maxMultipartBytes = int('BEEP_ROUTER_MAX_REQUEST_BYTES', maxFileBytes + 1024 * 1024);
const maxJsonBytes = int('BEEP_ROUTER_MAX_JSON_BYTES', 1024 * 1024);
const requestTimeoutSeconds = int('BEEP_ROUTER_REQUEST_TIMEOUT_SECONDS', 60);
const PREFLIGHT_HEADERS = ['graphql-require-preflight', 'apollo-require-preflight', 'x-apollo-operation-name'];
const uploadFetchAPI = createFetch({
  formDataLimits: { fileSize: maxFileBytes, files: maxFiles, fieldSize: 1024 * 1024, fields: 16, parts: maxFiles + 16 },
});

function refuse(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

function useUploadGuard(): GatewayPlugin {
  return {
    onRequest({ request, endResponse }: { request: Request; endResponse: (r: Response) => void }) {
      if (request.method !== 'POST') return;
      const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'multipart/form-data') {
        const declared = request.headers.get('content-length');
        if (declared !== null && (!/^\d+$/.test(declared) || Number(declared) > maxJsonBytes)) {
          return endResponse(
            refuse(413, 'REQUEST_ENTITY_TOO_LARGE', `The request is larger than ${maxJsonBytes} bytes.`),
          );
        }
        return;
      }
      if (!PREFLIGHT_HEADERS.some((name) => (request.headers.get(name) ?? '').trim() !== '')) {
        return endResponse(
          refuse(403, 'FORBIDDEN', 'Multipart requests need a preflight header (GraphQL-Require-Preflight).'),
        );
      }
      const length = request.headers.get('content-length');
      if (length !== null && (!/^\d+$/.test(length) || Number(length) > maxMultipartBytes)) {
        return endResponse(
          refuse(413, 'REQUEST_ENTITY_TOO_LARGE', `The request is larger than ${maxMultipartBytes} bytes.`),
        );
      }
    },
  } as GatewayPlugin;
}

// ---------------------------------------------------------------------------------------------
// webhooks: Discord's Execute Webhook over plain HTTP
//
// `POST /webhooks/{id}/{token}` (and `/api/webhooks/...`, the path of Discord's URLs; GET reads the webhook as
// Discord's Get Webhook with Token) is not GraphQL: the
// router forwards it as it is to the webhooks subgraph's own route (`<subgraph base>/webhooks/{id}/{token}`,
// the base being its GraphQL URL without `/graphql`, or BEEP_WEBHOOKS_EXECUTE_URL), before the upload guard
// and the JWT plugin see it (the secret in the path is the credential; Discord tooling sends no preflight
// header). Bodies over BEEP_ROUTER_MAX_WEBHOOK_BYTES (256 KiB, the subgraph's own limit) are refused here;
// a multipart body (Discord's form with files) may be as large as a message's attachments, the uploads'
// BEEP_ROUTER_MAX_REQUEST_BYTES (21 MiB), the subgraph checking the files themselves.

const WEBHOOK_PATH = /^\/(?:api\/)?webhooks\/([^/]+)\/([^/]+)\/?$/;
const maxWebhookBytes = int('BEEP_ROUTER_MAX_WEBHOOK_BYTES', 256 * 1024);
const WEBHOOK_REQUEST_HEADERS = ['content-type', 'user-agent', 'x-request-id', 'accept'];
const WEBHOOK_RESPONSE_HEADERS = [
  'content-type',
  'retry-after',
  'x-request-id',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'x-ratelimit-reset-after',
  'x-ratelimit-bucket',
  'x-ratelimit-scope',
];

/** Where a non-GraphQL path is forwarded: `variable`, or the subgraph's URL without `/graphql` + `suffix`. */
function upstreamBase(variable: string, subgraph: string, suffix = ''): string | undefined {
  const explicit = str(variable);
  if (explicit) return httpUrl(variable, explicit).replace(/\/+$/, '');
  const base = subgraphBase(subgraph);
  return base ? `${base}${suffix}` : undefined;
}

async function readLimited(request: Request, limit: number): Promise<Uint8Array | null> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function discordError(status: number, code: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

function useWebhookProxy(): GatewayPlugin {
  const base = upstreamBase('BEEP_WEBHOOKS_EXECUTE_URL', 'webhooks');
  return {
    async onRequest({ request, url, endResponse, serverContext }: any) {
      const match = WEBHOOK_PATH.exec(url.pathname);
      if (!match) return;
      if (request.method !== 'POST' && request.method !== 'GET') {
        return endResponse(discordError(405, 0, '405: Method Not Allowed', { allow: 'GET, POST' }));
      }
      if (!base) return endResponse(discordError(503, 0, 'Webhooks are not routed (no webhooks subgraph URL).'));
      const length = request.headers.get('content-length');
      const multipart = /^\s*multipart\/form-data\b/i.test(request.headers.get('content-type') ?? '');
      const limit = multipart ? Math.max(maxMultipartBytes, maxWebhookBytes) : maxWebhookBytes;
      const tooLarge = () => discordError(413, 40005, `Request entity too large (at most ${limit} bytes).`);
      if (length !== null && (!/^\d+$/.test(length) || Number(length) > limit)) {
        return endResponse(tooLarge());
      }
      const body = await readLimited(request, limit);
      if (body === null) return endResponse(tooLarge());
      const headers: Record<string, string> = {};
      for (const name of WEBHOOK_REQUEST_HEADERS) {
        const value = request.headers.get(name);
        if (value !== null) headers[name] = value;
      }
      const forwarded = forwardedFor(request.headers.get('x-forwarded-for') ?? undefined, serverContext);
      if (forwarded) headers['x-forwarded-for'] = forwarded;
      const target = `${base}/webhooks/${match[1]}/${match[2]}${url.search}`;
      let upstream: Response;
      try {
        upstream = await fetch(target, {
          method: request.method,
          headers,
          body: request.method === 'POST' ? body : undefined,
          signal: AbortSignal.timeout(30_000),
        });
      } catch (e) {
        log.error({ error: String(e) }, '[beep-router] webhook upstream failed');
        return endResponse(discordError(502, 0, 'The webhooks service is unavailable.'));
      }
      const out = new Headers();
      for (const name of WEBHOOK_RESPONSE_HEADERS) {
        const value = upstream.headers.get(name);
        if (value !== null) out.set(name, value);
      }
      const payload = upstream.status === 204 ? null : await upstream.arrayBuffer();
      return endResponse(new Response(payload, { status: upstream.status, headers: out }));
    },
  } as GatewayPlugin;
}

// ---------------------------------------------------------------------------------------------
// files: signed download URLs (pictures, attachments) through the public URL
//
// The subgraphs build file URLs on the public URL (BEEP_PUBLIC_URL, the router's: `<public>/media/files/...`).
// `GET|HEAD /media/files/...` is forwarded as it is to the media app in the users subgraph (its GraphQL URL
// without `/graphql`, + `/media`; or BEEP_MEDIA_UPSTREAM_URL), which checks the signature: no JWT, no upload
// guard (the signed query is the credential). The body is streamed, never buffered.

const MEDIA_PATH = /^\/media(\/files\/.+)$/;
const MEDIA_REQUEST_HEADERS = ['x-request-id', 'user-agent'];
const MEDIA_RESPONSE_HEADERS = [
  'content-type',
  'content-length',
  'content-disposition',
  'cache-control',
  'etag',
  'x-content-type-options',
  'content-security-policy',
  'x-request-id',
];

function useMediaProxy(): GatewayPlugin {
  const base = upstreamBase('BEEP_MEDIA_UPSTREAM_URL', 'users', '/media');
  return {
    async onRequest({ request, url, endResponse }: any) {
      const match = MEDIA_PATH.exec(url.pathname);
      if (!match) return;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return endResponse(new Response(null, { status: 405, headers: { allow: 'GET, HEAD' } }));
      }
      if (!base) return endResponse(new Response(null, { status: 503 }));
      const headers: Record<string, string> = {};
      for (const name of MEDIA_REQUEST_HEADERS) {
        const value = request.headers.get(name);
        if (value !== null) headers[name] = value;
      }
      // 30 s for the answer to start; the body (up to a message's 20 MiB) streams as long as it takes.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 30_000);
      let upstream: Response;
      try {
        upstream = await fetch(`${base}${match[1]}${url.search}`, {
          method: request.method,
          headers,
          signal: abort.signal,
        });
      } catch (e) {
        log.error({ error: String(e) }, '[beep-router] media upstream failed');
        return endResponse(new Response(null, { status: 502 }));
      } finally {
        clearTimeout(timer);
      }
      const out = new Headers();
      for (const name of MEDIA_RESPONSE_HEADERS) {
        const value = upstream.headers.get(name);
        if (value !== null) out.set(name, value);
      }
      const body = request.method === 'HEAD' ? null : upstream.body;
      return endResponse(new Response(body, { status: upstream.status, headers: out }));
    },
  } as GatewayPlugin;
}

// ---------------------------------------------------------------------------------------------
// the fan-out tier (fanout.ts): subscriptions rendered once per operation and viewer class
//
// Needs the deployment's internal secret (BEEP_INTERNAL_SECRET, the subgraphs' too). Without it, or with
// BEEP_FANOUT=0, every subscription is executed once per subscriber.

const internalSecret = str('BEEP_INTERNAL_SECRET');
const fanoutEnabled = bool('BEEP_FANOUT', true) && internalSecret !== undefined;
const fanoutBuffer = int('BEEP_FANOUT_BUFFER', 1000);
const fanoutRecheck = int('BEEP_FANOUT_RECHECK_SECONDS', 60);
if (!internalSecret) log.warn('[beep-router] BEEP_INTERNAL_SECRET is not set: subscriptions are not shared');

function subgraphBase(name: string): string | undefined {
  let graphqlUrl = transportEntries[name]?.location;
  if (!graphqlUrl) {
    try {
      const sdl = readFileSync(supergraphPath, 'utf8');
      const pattern = new RegExp(`@join__graph\\(\\s*name:\\s*"${name}",\\s*url:\\s*"([^"]+)"`);
      graphqlUrl = sdl.match(pattern)?.[1];
    } catch {
      graphqlUrl = undefined;
    }
  }
  return graphqlUrl?.replace(/\/graphql\/?$/, '');
}

// ---------------------------------------------------------------------------------------------
// Prometheus metrics on an internal port, never on the public one (metrics.ts)

const metrics = routerMetrics({
  port: int('BEEP_ROUTER_METRICS_PORT', 0),
  host: str('BEEP_ROUTER_METRICS_HOST', host)!,
  publicPort: port,
  log,
});
metrics?.start().catch((e) => {
  log.error({ error: String(e) }, '[beep-router] the metrics listener could not start');
  process.exit(1);
});

const fanout = fanoutEnabled
  ? new FanoutTier({
      secret: internalSecret!,
      supergraphPath,
      subgraphBase,
      log,
      bufferLimit: Math.max(fanoutBuffer, 1),
      recheckSeconds: Math.max(fanoutRecheck, 1),
      observe: metrics?.fanout,
    })
  : undefined;

// ---------------------------------------------------------------------------------------------

// The query planner and executor (runtime.ts): queries and mutations on Hive Router's runtime, subscriptions
// on the gateway's JavaScript stitching runtime; `stitching` keeps every operation on the latter
// (router/README.md, BEEP_ROUTER_RUNTIME).
const runtimeName = runtimeNamed(str('BEEP_ROUTER_RUNTIME', 'router')!);

log.info(
  {
    supergraph: supergraphPath,
    runtime: runtimeName,
    host,
    port,
    maxDepth,
    maxTokens,
    maxAliases,
    maxCost,
    dedupe,
    fanout: fanout ? { buffer: fanoutBuffer, recheckSeconds: fanoutRecheck } : false,
    uploads: { maxFileBytes, maxFiles, maxMultipartBytes },
    cors: corsSetting.allowed,
    jwks: jwksUrls,
    urlOverrides: Object.fromEntries(
      Object.entries(transportEntries)
        .filter(([k, v]) => k !== '*' && v.location)
        .map(([k, v]) => [k, v.location]),
    ),
  },
  '[beep-router] configuration',
);

// Traces (tracing.ts): off unless BEEP_OTEL_EXPORTER says otherwise; then set up before the gateway.
const openTelemetry = await setUpTracing(tracingSettings(env));

export const gatewayConfig = defineConfig({
  supergraph: supergraphPath,
  ...(runtimeName === 'router' ? { unifiedGraphHandler: routerForRequests } : {}),
  host,
  port,
  logging: log,
  cors: corsSetting.cors as any, // a per-request factory (the type wants a Yoga server context)
  // The Laboratory runs subscriptions over SSE: its WebSocket client sends the Headers tab's
  // `authorization` in each operation's `extensions`, which no gateway reads (a WebSocket carries it in
  // connection_init), so a signed-in subscription would be refused. Over SSE it is a real header.
  graphiql: laboratory ? { subscriptionsProtocol: 'SSE' } : false,
  transportEntries,
  // The WebSocket transport reports lost upstream connections to the fan-out tier (upstream.ts).
  transports: {
    http: httpTransport,
    ws: watchedWebSocketTransport((subgraph) => fanout?.upstreamDropped(subgraph)),
  },
  ...(metrics ? { prometheus: metrics.prometheus } : {}),
  ...(openTelemetry ? { openTelemetry } : {}),
  multipart: true,
  fetchAPI: { Request: uploadFetchAPI.Request, Body: uploadFetchAPI.Body } as any,

  // Built-in graphql-armor token limit (checked while parsing); 0 disables. Depth and aliases:
  // see useDepthAndAliasLimits above.
  maxTokens: maxTokens || false,
  // Node answers 408 and closes the connection when a request's body has not all arrived in time.
  requestTimeout: requestTimeoutSeconds * 1000,

  // HTTP headers sent to subgraphs. For WebSocket clients, context.headers already contains the
  // connection_init payload (so queries/mutations sent over the socket carry the same token).
  // x-request-id is not listed: the gateway's request-id feature already forwards the client's
  // x-request-id (or a generated one) on every upstream request.
  propagateHeaders: {
    fromClientToSubgraphs({ request, context }) {
      const fromContext = (context as { headers?: Record<string, unknown> } | undefined)?.headers;
      const pick = (name: string) => {
        const v = fromContext?.[name];
        if (typeof v === 'string' && v !== '') return v;
        return request.headers.get(name) ?? undefined;
      };
      return {
        authorization: pick('authorization'),
        'accept-language': pick('accept-language'),
        // The client passed the router's preflight check (useUploadGuard); subgraphs ask for it too.
        'graphql-require-preflight': 'true',
        // The client's address, appended as a proxy does (sign-in throttling reads the last entry).
        'x-forwarded-for': forwardedFor(pick('x-forwarded-for'), context),
      };
    },
  },

  plugins: () => [
    useAccessLog(clientAddress), // before the proxies: their requests are logged too
    useWebhookProxy(), // first: its requests are not GraphQL (no upload guard, no JWT)
    useMediaProxy(), // the same: signed file downloads
    useVaryOrigin() as GatewayPlugin,
    useUploadGuard(),
    useBeepJwt(),
    useJsonDepthLimit(),
    ...(runtimeName === 'router' ? [useVariableCheck() as GatewayPlugin] : []), // variables.ts
    ...(maxDepth || maxAliases ? [useDepthAndAliasLimits(maxDepth, maxAliases)] : []),
    ...(maxCost ? [useCostLimit({ supergraphPath, maxCost, defaultListSize: DEFAULT_LIST_SIZE, log }) as GatewayPlugin] : []),
    // Each subscription event's delivery context (tracing.ts): its trace context for the delivery span,
    // and the subgraph's live-signal mark (docs/live-signal.md), for shared and per-subscriber executions.
    useDeliveryContexts(),
    ...(openTelemetry ? [usePerSubscriberDeliveryTracing()] : []),
    useSharedSubscriptions(fanout), // without the tier, for the live signal alone
    ...(metrics ? [metrics.plugin] : []),
  ],
});
