"""The router's watched WebSocket transport (router/upstream.ts), driven in Node against a small
graphql-transport-ws server: a connection that was up and is lost (the server's process gone: the socket
cut without a close frame) is reported with the subgraph's name; a connection the server closes on
purpose (normal close, an application code), the client's own idle close, and a connect that fails are
not (reporting those would reopen every shared stream, or loop while the subgraph is down)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROUTER = Path(__file__).resolve().parents[2] / "router"

SCRIPT = """
import { register } from 'node:module';
register('@graphql-hive/importer/hooks', import.meta.url);
const { WebSocketServer } = await import('ws');
const { parse } = await import('graphql');
const { watchedWebSocketTransport } = await import('./upstream.ts');

const lost = [];
const transport = watchedWebSocketTransport((subgraph) => lost.push(subgraph));
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
const sockets = [];
const server = new WebSocketServer({ port: 0, handleProtocols: () => 'graphql-transport-ws' });
server.on('connection', (socket) => {
  sockets.push(socket);
  socket.on('message', (raw) => {
    const ack = JSON.stringify({ type: 'connection_ack' });
    if (JSON.parse(String(raw)).type === 'connection_init') socket.send(ack);
  });
});
await new Promise((r) => server.on('listening', r));
const port = server.address().port;
const executorFor = (subgraph, location) =>
  transport.getSubgraphExecutor({ transportEntry: { kind: 'ws', subgraph, location }, log: silent });
const subscription = { document: parse('subscription { ticks }'), operationType: 'subscription' };
const settle = (ms) => new Promise((r) => setTimeout(r, ms));

async function open(subgraph) {
  const events = executorFor(subgraph, `http://127.0.0.1:${port}/graphql`)(subscription);
  const pending = events.next().catch((e) => e);
  await settle(300); // connected, subscribed
  return { events, pending };
}

const results = {};
// The server's process gone: the socket cut without a close frame (1006).
const cut = await open('cut');
sockets.at(-1).terminate();
await settle(300);
results.cut = [...lost];
await cut.events.return?.();

// Closed on purpose by the server: a normal close, and an application code (4403).
for (const [name, code] of [['normal', 1000], ['forbidden', 4403]]) {
  const opened = await open(name);
  sockets.at(-1).close(code, 'on purpose');
  await settle(300);
  await opened.events.return?.();
}
// The client's own idle close once nothing is subscribed (lazyCloseTimeout: 3 s).
const idle = await open('idle');
await idle.events.return?.();
await settle(3500);
// Nothing listens there: the connect fails, and is retried by the client.
const refused = executorFor('refused', 'http://127.0.0.1:1/graphql')(subscription);
const failing = refused.next().catch((e) => e);
await settle(1500);
await refused.return?.();
results.all = [...lost];
console.log(JSON.stringify(results));
for (const socket of sockets) socket.terminate();
server.close();
process.exit(0);
"""


def test_only_a_lost_connection_is_reported() -> None:
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SCRIPT],
        cwd=ROUTER,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cut"] == ["cut"]
    assert found["all"] == ["cut"]  # nothing for the normal, forbidden, idle or refused connections
