// The graphql-http audits (GraphQL over HTTP conformance) of GraphQL endpoints: one JSON line per URL,
// {"url": ..., "results": [{"id", "name", "status": "ok" | "warn" | "error", "reason"?}]}.
// Usage: node router/audit.mjs <url> [<url> ...]   (tests/security/test_cors_and_media_types.py)
// BEEP_AUDIT_HEADERS (a JSON object) adds headers to every request: the internal caller's credential,
// without which a subgraph refuses everyone (kernel/internal.py).
import { auditServer } from 'graphql-http';

const extra = JSON.parse(process.env.BEEP_AUDIT_HEADERS || '{}');
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  return fetch(input, { ...init, headers });
};

for (const url of process.argv.slice(2)) {
  const results = await auditServer({ url, fetchFn });
  const summary = [];
  for (const r of results) {
    summary.push({
      id: r.id,
      name: r.name,
      status: r.status,
      ...(r.status === 'ok' ? {} : { reason: r.reason }),
    });
  }
  process.stdout.write(JSON.stringify({ url, results: summary }) + '\n');
}
