// The graphql-http audits (GraphQL over HTTP conformance) of GraphQL endpoints: one JSON line per URL,
// {"url": ..., "results": [{"id", "name", "status": "ok" | "warn" | "error", "reason"?}]}.
// Usage: node router/audit.mjs <url> [<url> ...]   (tests/security/test_cors_and_media_types.py)
import { auditServer } from 'graphql-http';

for (const url of process.argv.slice(2)) {
  const results = await auditServer({ url });
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
