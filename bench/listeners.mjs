// Fan-out receiver for the live-delivery scenario: N graphql-transport-ws clients (graphql-ws + ws from
// router/node_modules, nothing added), each subscribed to one channel's messageEvents through the router.
//
// argv[2]: JSON (or the path of a file holding it) {routerDir, query, channelId, prefix,
//          subscribers: [{url, token, channelId?}]} (a subscriber's own channelId wins: bench/mixed.py)
// stdout lines: "ready" (every socket acknowledged), "primed" (every subscriber got an event),
//               "result <json>" (at the end).
// stdin lines:  "end <count> [drainMs]" (the sender is done; <count> measured messages were sent; wait up
//               to drainMs, default cfg.drainMs, for the stragglers, then print the result);
//               "endc <drainMs> <{channelId: count} as JSON>" (the same, with a count per channel: each
//               subscriber expects its own channel's);
//               "step <prefix>" (forget what was received and measure messages starting with <prefix>
//               from now on; answers "stepped": bench/delivery.py reuses the sockets for several steps).
//               Exits when stdin closes.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';

// A path instead of JSON: 500 subscribers' tokens are more than one argv string may hold (128 KiB).
const cfg = JSON.parse(process.argv[2].startsWith('{') ? process.argv[2] : readFileSync(process.argv[2], 'utf8'));
const require = createRequire(`${cfg.routerDir}/package.json`);
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');

const now = () => performance.timeOrigin + performance.now(); // wall clock, ms, sub-ms resolution
const say = (line) => process.stdout.write(`${line}\n`);

let connected = 0;
let primed = 0;
let expected = null;
let finished = false;
let drainTimer = null;
let prefix = cfg.prefix;

const subs = cfg.subscribers.map((s, index) => ({ index, url: s.url, channelId: s.channelId ?? cfg.channelId,
  got: [], seen: new Set(), dups: 0, first: false, errors: [], completed: false }));
let expectedByChannel = null;

function finish() {
  if (finished) return;
  finished = true;
  if (drainTimer) clearTimeout(drainTimer);
  const out = subs.map((s) => ({ url: s.url, received: s.got, duplicates: s.dups, errors: s.errors,
    completed: s.completed }));
  // Stay alive until stdin closes, so the benchmark can read this process's CPU time first.
  process.stdout.write(`result ${JSON.stringify(out)}\n`);
}

function maybeFinish() {
  if (expectedByChannel !== null) {
    if (subs.every((s) => s.seen.size >= (expectedByChannel[s.channelId] ?? 0))) finish();
  } else if (expected !== null && subs.every((s) => s.seen.size >= expected)) finish();
}

// Opened in batches (cfg.batch, default all at once): 500 sockets opened together in full mode on the
// loaded machine were closed by the router with 4408 "Connection initialisation timeout" (graphql-ws
// gives connection_init 3 s). A batch starts when the previous one is acknowledged (or after 30 s).
let waiters = [];
const whenConnected = (count) => new Promise((resolve) => {
  if (connected >= count) resolve();
  else waiters.push({ count, resolve });
});

function open(s) {
  const client = createClient({
    url: s.url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${cfg.subscribers[s.index].token}` },
    lazy: false,
    retryAttempts: 0,
    on: {
      connected: () => {
        connected += 1;
        waiters = waiters.filter((w) => (connected >= w.count ? (w.resolve(), false) : true));
        if (connected === subs.length) say('ready');
      },
    },
  });
  client.subscribe(
    { query: cfg.query, variables: { channelId: s.channelId } },
    {
      next: (result) => {
        const t = now();
        if (result.errors) s.errors.push(JSON.stringify(result.errors).slice(0, 300));
        const content = result.data?.messageEvents?.message?.content;
        if (typeof content !== 'string') return;
        if (!s.first) {
          s.first = true;
          primed += 1;
          if (primed === subs.length) say('primed');
        }
        if (!content.startsWith(prefix)) return;
        const seq = Number(content.slice(prefix.length));
        if (s.seen.has(seq)) {
          s.dups += 1;
          return;
        }
        s.seen.add(seq);
        s.got.push([seq, t]);
        maybeFinish();
      },
      error: (err) => s.errors.push(String(err?.message ?? JSON.stringify(err)).slice(0, 300)),
      complete: () => { s.completed = true; },
    },
  );
}

const batch = cfg.batch || subs.length;
for (let start = 0; start < subs.length; start += batch) {
  const chunk = subs.slice(start, start + batch);
  chunk.forEach(open);
  await Promise.race([whenConnected(start + chunk.length), new Promise((r) => setTimeout(r, 30000))]);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('close', () => process.exit(0));
lines.on('line', (line) => {
  const [command, arg, drain] = line.trim().split(' ');
  if (command === 'end') {
    expected = Number(arg);
    drainTimer = setTimeout(finish, drain === undefined ? cfg.drainMs : Number(drain));
    maybeFinish();
  } else if (command === 'endc') {
    expectedByChannel = JSON.parse(drain);
    drainTimer = setTimeout(finish, Number(arg));
    maybeFinish();
  } else if (command === 'step') {
    if (drainTimer) clearTimeout(drainTimer);
    drainTimer = null;
    finished = false;
    expected = null;
    expectedByChannel = null;
    prefix = `${arg} `;
    for (const s of subs) {
      s.got = [];
      s.seen = new Set();
      s.dups = 0;
      s.errors = [];
    }
    say('stepped');
  }
});
