// Open-loop sender for the benchmarks, in Node: the Python sender (bench/delivery.py `send_open_loop`,
// httpx) spent 5-6 ms of CPU per message on the same 2 cores as the stack it measures (bench/README.md);
// Node's fetch (undici, keep-alive) sends the same requests for a fraction of that.
//
// argv[2]: JSON, or the path of a file holding it: {urls, mutation, tokens, channels, prefix, rate, count,
//          capS, maxInflight}. Message `seq` is issued at start + seq / rate (or as soon as fewer than
//          maxInflight are in flight), through urls[seq % k] (the routers, as a load balancer spreads
//          clients), from tokens[seq % n] to channels[seq % m], content `${prefix} ${seq}`.
// stdout: one line, the result as JSON: {sent_at: {seq: wall ms at issue}, answer_ms: {seq: ms from issue to
//         answer}, errors: [...],
//         issued, issue_span_s, total_s, capped, late_issues} (bench/delivery.py `Sent`), and cpu_s: this
//         process's own CPU time over the run (it exits before the caller's CPU meter could read it).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const cfg = JSON.parse(process.argv[2].startsWith('{') ? process.argv[2] : readFileSync(process.argv[2], 'utf8'));
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const out = { sent_at: {}, answer_ms: {}, errors: [], issued: 0, issue_span_s: 0, total_s: 0, capped: false, late_issues: 0 };
let inflight = 0;
let released = null; // resolves when a request in flight finishes, while the issuer waits for room
const pending = [];

async function one(seq) {
  const at = wall();
  const began = performance.now();
  try {
    const response = await fetch(cfg.urls[seq % cfg.urls.length], {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${cfg.tokens[seq % cfg.tokens.length]}` },
      body: JSON.stringify({
        query: cfg.mutation,
        variables: { input: { channelId: cfg.channels[seq % cfg.channels.length], content: `${cfg.prefix} ${seq}` } },
      }),
    });
    const body = await response.json();
    if (body.errors?.length || body.data?.sendMessage?.__typename !== 'Message') {
      throw new Error(`HTTP ${response.status}: ${JSON.stringify(body).slice(0, 250)}`);
    }
    out.answer_ms[seq] = performance.now() - began;
    out.sent_at[seq] = at;
  } catch (e) {
    out.errors.push(String(e).slice(0, 300));
  } finally {
    inflight--;
    if (released) {
      const wake = released;
      released = null;
      wake();
    }
  }
}

// A bot or a client keeps its connections open between messages; the Python sender's pool outlived a
// step too. So the connections are opened before the clock starts, by queries the router answers itself.
await Promise.all(
  Array.from({ length: cfg.maxInflight }, (_, i) =>
    fetch(cfg.urls[i % cfg.urls.length], {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    }).then((response) => response.arrayBuffer()),
  ),
);

const cpuBefore = process.cpuUsage();
const start = performance.now();
let lastIssue = start;
for (let seq = 0; seq < cfg.count; seq++) {
  const scheduled = start + (seq * 1000) / cfg.rate;
  const delay = scheduled - performance.now();
  if (delay > 0) await sleep(delay);
  if (performance.now() - start > cfg.capS * 1000) {
    out.capped = true;
    break;
  }
  while (inflight >= cfg.maxInflight) await new Promise((resolve) => (released = resolve));
  const now = performance.now();
  if (now - scheduled > 100) out.late_issues++;
  lastIssue = now;
  out.issued++;
  inflight++;
  pending.push(one(seq));
}
await Promise.all(pending);
out.issue_span_s = (lastIssue - start) / 1000;
out.total_s = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuBefore);
out.cpu_s = (cpu.user + cpu.system) / 1e6;
process.stdout.write(`${JSON.stringify(out)}\n`);
