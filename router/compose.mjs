#!/usr/bin/env node
// Compose Beep's supergraph from the subgraph SDL files listed in supergraph.yaml.
//
//   node compose.mjs [--config ../supergraph.yaml] [--out <path>] [--check]
//
// --config  the supergraph.yaml to read (default: <repo root>/supergraph.yaml)
// --out     where to write the supergraph
//           (default: supergraph/supergraph.graphql next to the config file, i.e. in the repo root)
// --check   compose in memory only; exit 1 if the file at --out is missing or differs
//
// Relative paths given on the command line are resolved against the current directory;
// paths inside supergraph.yaml are resolved against the yaml file's directory.
// Exit codes: 0 ok, 1 composition error / check failed, 2 usage or input error.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { composeServices } from '@theguild/federation-composition';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

class InputError extends Error {}

function parseArgs(argv) {
  const opts = {
    config: resolve(REPO_ROOT, 'supergraph.yaml'),
    out: undefined,
    check: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new InputError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--config':
        opts.config = resolve(value());
        break;
      case '--out':
        opts.out = resolve(value());
        break;
      case '--check':
        opts.check = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node compose.mjs [--config supergraph.yaml] [--out supergraph.graphql] [--check]\n',
        );
        process.exit(0);
        break;
      default:
        throw new InputError(`unknown argument: ${arg}`);
    }
  }
  opts.out ??= resolve(dirname(opts.config), 'supergraph', 'supergraph.graphql');
  return opts;
}

// A deliberately small YAML reader for supergraph.yaml's fixed shape: nested block mappings of
// `key: scalar` lines, `#` comments, optional single/double quotes. Anything else (lists, flow
// collections, anchors, multi-line scalars, tabs) is rejected with the offending line number,
// rather than guessed at.
function parseSimpleYaml(text, file) {
  const root = {};
  const stack = [{ indent: -1, node: root }];
  let pendingKey = null; // mapping opened by `key:` on the previous line, waiting for children
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const where = `${file}:${idx + 1}`;
    if (/^\s*(#.*)?$/.test(raw)) return;
    if (/^\s*\t/.test(raw)) throw new InputError(`${where}: tabs are not allowed for indentation`);
    if (/^(---|\.\.\.)\s*$/.test(raw)) return;
    const indent = raw.match(/^ */)[0].length;
    const m = raw
      .slice(indent)
      .match(/^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{}\[\]&*!|>%@`-][^:#]*?)\s*:(?:\s+(.*?))?\s*$/);
    if (!m) throw new InputError(`${where}: unsupported YAML (expected "key: value" or "key:")`);
    const key = unquote(m[1], where);
    let rest = m[2] ?? '';
    if (pendingKey) {
      if (indent <= pendingKey.indent) {
        throw new InputError(`${where}: "${pendingKey.key}" has no value`);
      }
      const child = {};
      pendingKey.parent[pendingKey.key] = child;
      stack.push({ indent, node: child });
      pendingKey = null;
    }
    while (indent < stack[stack.length - 1].indent) stack.pop();
    const top = stack[stack.length - 1];
    if (indent !== top.indent && top.indent !== -1) {
      throw new InputError(`${where}: inconsistent indentation`);
    }
    if (top.indent === -1) top.indent = indent;
    if (Object.prototype.hasOwnProperty.call(top.node, key)) {
      throw new InputError(`${where}: duplicate key "${key}"`);
    }
    rest = stripComment(rest);
    if (rest === '') {
      pendingKey = { key, indent, parent: top.node };
      top.node[key] = null;
    } else {
      if (/^[\[{&*!|>]/.test(rest)) {
        throw new InputError(`${where}: unsupported YAML value ${JSON.stringify(rest)}`);
      }
      top.node[key] = unquote(rest, where);
    }
  });
  return root;
}

function stripComment(s) {
  if (s.startsWith('"') || s.startsWith("'")) return s.trim();
  const hash = s.search(/\s#/);
  return (hash === -1 ? s : s.slice(0, hash)).trim();
}

function unquote(s, where) {
  if (s.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(s)) throw new InputError(`${where}: bad double-quoted string`);
    return JSON.parse(s);
  }
  if (s.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(s)) throw new InputError(`${where}: bad single-quoted string`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  return s.trim();
}

function readSubgraphs(configPath) {
  if (!existsSync(configPath)) throw new InputError(`config file not found: ${configPath}`);
  const doc = parseSimpleYaml(readFileSync(configPath, 'utf8'), relative(process.cwd(), configPath) || configPath);
  const subgraphs = doc.subgraphs;
  if (!subgraphs || typeof subgraphs !== 'object') {
    throw new InputError(`${configPath}: expected a top-level "subgraphs:" mapping`);
  }
  const baseDir = dirname(configPath);
  const names = Object.keys(subgraphs).sort();
  if (names.length === 0) throw new InputError(`${configPath}: no subgraphs listed`);
  return names.map((name) => {
    const entry = subgraphs[name];
    const file = entry?.schema?.file;
    const url = entry?.routing_url;
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) {
      throw new InputError(`subgraph name "${name}" must match [A-Za-z_][A-Za-z0-9_-]*`);
    }
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
      throw new InputError(`subgraph "${name}": routing_url must be an http(s) URL`);
    }
    if (typeof file !== 'string' || file === '') {
      throw new InputError(`subgraph "${name}": schema.file is required`);
    }
    const sdlPath = resolve(baseDir, file);
    if (!existsSync(sdlPath)) throw new InputError(`subgraph "${name}": schema file not found: ${sdlPath}`);
    let typeDefs;
    try {
      typeDefs = parse(readFileSync(sdlPath, 'utf8'), { noLocation: false });
    } catch (e) {
      throw new InputError(`subgraph "${name}": cannot parse ${sdlPath}: ${e.message}`);
    }
    return { name, url, typeDefs };
  });
}

function formatError(err) {
  const code = err.extensions?.code ? `[${err.extensions.code}] ` : '';
  return `  - ${code}${err.message}`;
}

function main() {
  let opts;
  let services;
  try {
    opts = parseArgs(process.argv.slice(2));
    services = readSubgraphs(opts.config);
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`compose: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }

  const result = composeServices(services);
  if (result.errors && result.errors.length > 0) {
    process.stderr.write(`compose: composition failed with ${result.errors.length} error(s):\n`);
    for (const err of result.errors) process.stderr.write(`${formatError(err)}\n`);
    process.exit(1);
  }
  const sdl = result.supergraphSdl.replace(/\s*$/, '') + '\n';
  const outShown = relative(process.cwd(), opts.out) || opts.out;

  if (opts.check) {
    if (!existsSync(opts.out)) {
      process.stderr.write(`compose --check: ${outShown} is missing; run "node router/compose.mjs" and commit it\n`);
      process.exit(1);
    }
    if (readFileSync(opts.out, 'utf8') !== sdl) {
      process.stderr.write(
        `compose --check: ${outShown} is out of date with the subgraph schemas; run "node router/compose.mjs" and commit it\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`compose --check: ${outShown} is up to date (${services.length} subgraphs)\n`);
    return;
  }

  mkdirSync(dirname(opts.out), { recursive: true });
  const unchanged = existsSync(opts.out) && readFileSync(opts.out, 'utf8') === sdl;
  if (!unchanged) writeFileSync(opts.out, sdl);
  process.stdout.write(
    `compose: ${unchanged ? 'unchanged' : 'wrote'} ${outShown} (${services.map((s) => s.name).join(', ')})\n`,
  );
}

main();
