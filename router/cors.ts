// CORS: which browser origins may call the router from another site.
//
// BEEP_ROUTER_CORS_ORIGINS is a comma-separated allow-list of origins (`https://app.example.com`); unset,
// only the router's own public origin (BEEP_PUBLIC_URL's, or http://<host>:<port>) is listed: same-origin
// only, which is all the Laboratory page the router serves needs (a same-origin request needs no CORS
// header at all). `*` answers any origin (development only: a warning is logged).
//
// An origin on the list gets `Access-Control-Allow-Origin: <it>` with credentials; any other gets no CORS
// header at all, on preflights too, so the browser refuses to hand it the response. (GraphQL Yoga's own
// list handling would answer a foreign origin `null`, which a sandboxed iframe's origin matches, or the
// only listed origin whatever the request's, so the decision is made here, per request.)

export type CorsOptions = {
  origin: string[];
  credentials: boolean;
  maxAge: number;
};

export type CorsPolicy = {
  /** What the gateway's `cors` option takes: options for this request's origin, or false (no headers). */
  cors: (request: Request) => CorsOptions | false;
  /** For the start-up log. */
  allowed: string[] | '*';
};

function originOf(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`[beep-router] ${name}: "${value}" is not an origin (scheme://host[:port])`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin === 'null') {
    throw new Error(`[beep-router] ${name}: "${value}" is not an http(s) origin`);
  }
  return url.origin;
}

/**
 * `setting`: BEEP_ROUTER_CORS_ORIGINS as given (undefined: unset); `publicUrl`: where clients reach the
 * router. Throws on a malformed origin (the gateway then refuses to start).
 */
export function corsPolicy(setting: string | undefined, publicUrl: string): CorsPolicy {
  const listed = (setting ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  if (listed.includes('*')) {
    if (listed.length > 1) throw new Error('[beep-router] BEEP_ROUTER_CORS_ORIGINS: "*" cannot be combined with origins');
    return {
      cors: (request) => {
        const origin = request.headers.get('origin');
        return origin ? { origin: [origin], credentials: true, maxAge: 600 } : false;
      },
      allowed: '*',
    };
  }
  const allowed = new Set(
    listed.length > 0
      ? listed.map((o) => originOf('BEEP_ROUTER_CORS_ORIGINS', o))
      : [originOf('BEEP_PUBLIC_URL', publicUrl)],
  );
  return {
    cors: (request) => {
      const origin = request.headers.get('origin');
      return origin && allowed.has(origin) ? { origin: [origin], credentials: true, maxAge: 600 } : false;
    },
    allowed: [...allowed],
  };
}

/** `Vary: Origin` on every answer: whether CORS headers are present depends on the request's Origin. */
export function useVaryOrigin() {
  return {
    onResponse({ response }: { response: Response }) {
      const vary = response.headers.get('vary') ?? '';
      if (!/(^|,)\s*origin\s*(,|$)/i.test(vary)) response.headers.set('vary', vary ? `${vary}, Origin` : 'Origin');
    },
  };
}
