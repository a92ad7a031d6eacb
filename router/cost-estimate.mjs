// Prints the estimated cost (router/cost.ts) of operations, one JSON object per line on stdin:
//   {"query": "...", "variables": {...}, "operationName": "..."}   ("variables" optional)  →  {"cost": 1234, "defaultMax": 100000}
// (or {"error": "..."} for an operation that does not parse or validate).
// Usage: node router/cost-estimate.mjs [--supergraph <file>] [--default-list-size <n>] < operations.jsonl
// Operators use it to price a client's queries before choosing BEEP_ROUTER_MAX_COST; the unit tests use it.
import { register } from 'node:module';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

register('@graphql-hive/importer/hooks', import.meta.url);
const { buildASTSchema, parse, validate } = await import('graphql');
const { costDirectivesOf, estimateCost, DEFAULT_LIST_SIZE, DEFAULT_MAX_COST } = await import('./cost.ts');

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
};
const here = dirname(fileURLToPath(import.meta.url));
const sdl = readFileSync(option('--supergraph', resolve(here, '../supergraph/supergraph.graphql')), 'utf8');
const defaultListSize = Number(option('--default-list-size', String(DEFAULT_LIST_SIZE)));
const document = parse(sdl);
const schema = buildASTSchema(document, { assumeValidSDL: true });
const directives = costDirectivesOf(document);

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    const { query, variables, operationName } = JSON.parse(line);
    const operation = parse(query);
    const errors = validate(schema, operation);
    if (errors.length) throw new Error(errors.map((e) => e.message).join('; '));
    // Without "variables" (an operation read from source code), absent ones are priced at the defaults.
    const coerce = variables !== undefined;
    const cost = estimateCost(schema, directives, operation, variables, operationName, defaultListSize, { coerce });
    if (cost === null) throw new Error('the variables do not coerce to their types');
    process.stdout.write(JSON.stringify({ cost, defaultMax: DEFAULT_MAX_COST }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e?.message ?? e) }) + '\n');
  }
}
