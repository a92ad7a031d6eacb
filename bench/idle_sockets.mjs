// Idle subscriptions for bench/idle.py: many graphql-transport-ws sockets (graphql-ws + ws from
// router/node_modules), each holding several subscriptions, opened all at once or in batches, and closed
// all at once on request.
//
// argv[2]: the path of a JSON file {routerDir, query, batch, sockets: [{url, token, channels: [id...]}]}
// stdout:  "ready <json>" once every socket is acknowledged (or 120 s passed): {acked, failedSockets,
//          seconds}; "closed <json>" after "close" on stdin: {errors, seconds}; then waits for stdin to end.
// stdin:   "close" (dispose every client at once).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import readline from 'node:readline';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(`${cfg.routerDir}/package.json`);
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');
const say = (line) => process.stdout.write(`${line}\n`);

let acked = 0;
let failedSockets = 0;
const errors = [];
const clients = [];
const started = performance.now();

function open(socket) {
  return new Promise((resolve) => {
    const client = createClient({
      url: socket.url,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${socket.token}` },
      lazy: false,
      retryAttempts: 0,
      on: {
        connected: () => {
          acked += 1;
          resolve();
        },
        closed: (event) => {
          if (!closing && event?.code !== 1000) failedSockets += 1;
          resolve();
        },
      },
    });
    clients.push(client);
    for (const channelId of socket.channels) {
      client.subscribe(
        { query: cfg.query, variables: { channelId } },
        {
          next: (result) => {
            if (result.errors && errors.length < 20) errors.push(JSON.stringify(result.errors).slice(0, 300));
          },
          error: (err) => {
            if (!closing && errors.length < 20) errors.push(String(err?.message ?? JSON.stringify(err)).slice(0, 300));
          },
          complete: () => {},
        },
      );
    }
  });
}

let closing = false;
const batch = cfg.batch || cfg.sockets.length;
for (let i = 0; i < cfg.sockets.length; i += batch) {
  await Promise.race([
    Promise.all(cfg.sockets.slice(i, i + batch).map(open)),
    new Promise((r) => setTimeout(r, 120000)),
  ]);
}
say(`ready ${JSON.stringify({ acked, failedSockets, errors, seconds: (performance.now() - started) / 1000 })}`);

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'close') continue;
  closing = true;
  const t = performance.now();
  await Promise.all(clients.map((c) => c.dispose()));
  say(`closed ${JSON.stringify({ errors, seconds: (performance.now() - t) / 1000 })}`);
}
