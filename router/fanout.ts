// The fan-out tier: each event of a subscription is rendered once per operation and viewer class, and
// the same result is written to every authorised socket (DESIGN.md, "Realtime").
//
// Client subscriptions that would receive the same bytes share one *stream*: one upstream execution of
// the operation through this gateway (the root field from its subgraph, `author`/`channel` and other
// foreign fields fetched once per event). The key is the operation as printed (its `after` argument
// taken out), its variables other than `after`, and the viewer class: "shared" unless the selection
// touches a field the schema marks `@viewerDependent`, the user otherwise.
//
// The gateway never decides access itself. The subgraph that owns the subscription field answers "who
// of these users may receive it" (`POST <subgraph>/internal/live-access`, kernel/web/live_access.py): at
// subscribe time, for every socket of a stream when one of its servers announces an access change (the
// subgraph's `/internal/access-changes` feed), and every BEEP_FANOUT_RECHECK_SECONDS as a second line.
// The second line is paced: each second a slice of the streams is re-asked (every stream once per period),
// at most RECHECKS_IN_FLIGHT calls at a time per subgraph, as is the re-ask of every stream after a feed
// reconnects; asking about hundreds of streams at once held up that subgraph's other requests for
// seconds (bench/README.md, session 20).
// A socket that loses access gets its error (FORBIDDEN, or NOT_FOUND once the channel is gone) and
// completes. A field whose subgraph declares no check is executed once per subscriber, as before.
//
// The stream runs as one of its subscribers: a fan-out credential for that user, signed with the
// deployment's internal secret (kernel/web/internal.py), which clients cannot present (the JWT plugin
// takes only `Bearer`). If that user leaves or loses access, the stream reopens as another subscriber
// from its last cursor. A client that subscribes with `after` first gets what it missed from its own
// execution (its own token), then joins the shared stream at the first event seen both ways: no gap,
// no duplicate (events are ordered by their `cursor`, which the tier selects under an alias).
//
// A socket that falls BEEP_FANOUT_BUFFER events behind is cut off: its subscription ends with
// SLOW_CONSUMER, and the client resumes from its last cursor. The sockets holding shared streams count
// for their users' presence (`POST <subgraph>/internal/presence`, renewed every ttl/3).
//
// The live signal (docs/live-signal.md): a client that sends `extensions: {"liveSignal": true}` with its
// subscription gets one result `{"extensions": {"live": true}}` (no data) once live delivery is
// established: every event published after it reaches the client. It is a result of the operation and
// not a field's value because it must exist for every subscription field, and four of them return an
// object type (a new union member would break every existing selection); a graphql-transport-ws message
// of a new type would make standard clients close the socket (4400). Without the opt-in, nothing changes.
// Per socket: one joining a live shared stream is live at once; one starting a stream (or joining one
// that is not live yet) when the upstream is, which the subgraph announces (kernel/web/live_signal.py: every
// stream's upstream asks for it); an unshared subscription asks its subgraph only when its client did.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  GraphQLError,
  Kind,
  getArgumentValues,
  getNamedType,
  getOperationAST,
  isAbstractType,
  isObjectType,
  parse,
  print,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
} from 'graphql';
import { SHARED_DELIVERY, TRACE_CARRIER, deliveredInTrace, type TraceCarrier } from './tracing.ts';

type Log = {
  info: (...args: any[]) => void;
  warn: (...args: any[]) => void;
  error: (...args: any[]) => void;
};

export interface FanoutOptions {
  secret: string;
  supergraphPath: string;
  /** The base URL (without /graphql) of a subgraph, by its name in the supergraph. */
  subgraphBase: (name: string) => string | undefined;
  log: Log;
  bufferLimit: number;
  recheckSeconds: number;
  observe?: FanoutObserver;
}

/** Why the tier asked a subgraph who may receive a stream (a metric's label, metrics.ts). */
export type CheckReason = 'subscribe' | 'reopen' | 'access_change' | 'periodic' | 'feed_reconnect';

export interface FanoutObserver {
  checked(reason: CheckReason): void;
  feedConnected(subgraph: string): void;
}

/** Background re-checks (periodic, after a feed reconnect) in flight per subgraph. */
const RECHECKS_IN_FLIGHT = 4;

const AFTER_VAR = '__fanoutAfter';
const CURSOR_ALIAS = '__fanoutCursor';
const CREDENTIAL_TTL_SECONDS = 24 * 3600;
const UPSTREAM_PATIENCE_MS = 15_000; // how long a failing upstream is reopened before its sockets are told
const LIVE_REQUEST = 'liveSignal'; // the client's opt-in, in its request's `extensions`
const LIVE_RESULT: ExecutionResult = { extensions: { live: true } }; // what an opted-in client receives
// Read by the subgraph transport's connection parameters (gateway.config.ts): non-empty, the upstream
// connection asks its subgraph for the signal.
export const LIVE_CONTEXT_KEY = 'beepLiveSignal';

// ------------------------------------------------------------------------------------------------
// what the supergraph says: owners of subscription fields, fields marked @viewerDependent

interface SupergraphFacts {
  owners: Map<string, string>; // Subscription field -> subgraph name
  viewerDependent: Set<string>; // "Type.field"
}

export function readSupergraph(path: string): SupergraphFacts {
  const doc = parse(readFileSync(path, 'utf8'));
  const graphNames = new Map<string, string>();
  const owners = new Map<string, string>();
  const viewerDependent = new Set<string>();
  for (const def of doc.definitions) {
    if (def.kind === Kind.ENUM_TYPE_DEFINITION && def.name.value === 'join__Graph') {
      for (const value of def.values ?? []) {
        const dir = value.directives?.find((d) => d.name.value === 'join__graph');
        const name = dir?.arguments?.find((a) => a.name.value === 'name')?.value;
        if (name?.kind === Kind.STRING) graphNames.set(value.name.value, name.value);
      }
    }
  }
  for (const def of doc.definitions) {
    if (def.kind !== Kind.OBJECT_TYPE_DEFINITION && def.kind !== Kind.INTERFACE_TYPE_DEFINITION) continue;
    for (const field of def.fields ?? []) {
      const directives = field.directives ?? [];
      if (directives.some((d) => d.name.value === 'viewerDependent')) {
        viewerDependent.add(`${def.name.value}.${field.name.value}`);
      }
      if (def.name.value !== 'Subscription') continue;
      const join = directives.find((d) => d.name.value === 'join__field');
      const graph = join?.arguments?.find((a) => a.name.value === 'graph')?.value;
      if (graph?.kind === Kind.ENUM) {
        const name = graphNames.get(graph.value);
        if (name) owners.set(field.name.value, name);
      }
    }
  }
  return { owners, viewerDependent };
}

// ------------------------------------------------------------------------------------------------
// internal calls

function signature(secret: string, body: string): string {
  const stamp = Math.floor(Date.now() / 1000);
  return `t=${stamp},v1=${createHmac('sha256', secret).update(`${stamp}.${body}`).digest('hex')}`;
}

function fanoutCredential(secret: string, userId: string): string {
  const expires = Math.floor(Date.now() / 1000) + CREDENTIAL_TTL_SECONDS;
  const mac = createHmac('sha256', secret).update(`fanout.${userId}.${expires}`).digest('hex');
  return `BeepFanout ${userId}.${expires}.${mac}`;
}

interface Denial {
  code: string;
  message: string;
}
interface Verdict {
  shared: boolean;
  /** Every event of the field is its whole current state (a snapshot first): see SharedStream.latest. */
  state: boolean;
  allowed: Set<string>;
  denied: Map<string, Denial>;
  servers: Set<string>;
}

async function postInternal(secret: string, url: string, payload: unknown): Promise<any> {
  const body = JSON.stringify(payload);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'beep-internal-signature': signature(secret, body) },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

// ------------------------------------------------------------------------------------------------
// operations: the shared document, the key, the viewer class

function rootField(op: OperationDefinitionNode): FieldNode | undefined {
  const selections = op.selectionSet.selections;
  if (selections.length !== 1 || selections[0]!.kind !== Kind.FIELD) return undefined;
  return selections[0] as FieldNode;
}

function touchesViewer(
  schema: GraphQLSchema,
  facts: SupergraphFacts,
  type: GraphQLNamedType,
  set: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  seen: Set<string>,
): boolean {
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      if (!('getFields' in type)) continue;
      const field = (type as any).getFields()[sel.name.value];
      if (!field) continue;
      if (facts.viewerDependent.has(`${type.name}.${sel.name.value}`)) return true;
      if (sel.selectionSet) {
        const inner = getNamedType(field.type);
        if (touchesViewer(schema, facts, inner, sel.selectionSet, fragments, seen)) return true;
      }
    } else {
      const fragment = sel.kind === Kind.INLINE_FRAGMENT ? sel : fragments.get(sel.name.value);
      if (!fragment || (sel.kind === Kind.FRAGMENT_SPREAD && seen.has(sel.name.value))) continue;
      if (sel.kind === Kind.FRAGMENT_SPREAD) seen.add(sel.name.value);
      const condition = fragment.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
      if (condition && touchesViewer(schema, facts, condition, fragment.selectionSet, fragments, seen)) return true;
    }
  }
  return false;
}

/** The operation with the root field's `after` bound to $__fanoutAfter and the event's cursor selected. */
function sharedDocument(
  schema: GraphQLSchema,
  doc: DocumentNode,
  op: OperationDefinitionNode,
  field: FieldNode,
  hasAfter: boolean,
  afterVariable: string | undefined,
): DocumentNode {
  const subscription = schema.getSubscriptionType()!;
  const def = subscription.getFields()[field.name.value]!;
  const returned = getNamedType(def.type);
  const cursorOf = (t: GraphQLNamedType) => isObjectType(t) && 'cursor' in t.getFields();
  const alias: SelectionNode = {
    kind: Kind.FIELD,
    alias: { kind: Kind.NAME, value: CURSOR_ALIAS },
    name: { kind: Kind.NAME, value: 'cursor' },
  };
  const extra: SelectionNode[] = [];
  if (cursorOf(returned)) extra.push(alias);
  else if (isAbstractType(returned)) {
    for (const possible of schema.getPossibleTypes(returned)) {
      if (!cursorOf(possible)) continue;
      extra.push({
        kind: Kind.INLINE_FRAGMENT,
        typeCondition: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: possible.name } },
        selectionSet: { kind: Kind.SELECTION_SET, selections: [alias] },
      });
    }
  }
  const args = (field.arguments ?? []).filter((a) => a.name.value !== 'after');
  if (hasAfter) {
    args.push({
      kind: Kind.ARGUMENT,
      name: { kind: Kind.NAME, value: 'after' },
      value: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: AFTER_VAR } },
    });
  }
  const newField: FieldNode = {
    ...field,
    arguments: args,
    selectionSet: field.selectionSet
      ? { ...field.selectionSet, selections: [...field.selectionSet.selections, ...extra] }
      : field.selectionSet,
  };
  const variables = (op.variableDefinitions ?? []).filter((v) => v.variable.name.value !== afterVariable);
  if (hasAfter) {
    variables.push({
      kind: Kind.VARIABLE_DEFINITION,
      variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: AFTER_VAR } },
      type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'String' } },
    });
  }
  const newOp: OperationDefinitionNode = {
    ...op,
    variableDefinitions: variables,
    selectionSet: { ...op.selectionSet, selections: [newField] },
  };
  return {
    ...doc,
    definitions: doc.definitions.map((d) => (d === op ? newOp : d)).filter(
      (d) => d === newOp || d.kind === Kind.FRAGMENT_DEFINITION,
    ),
  };
}

function stable(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stable((value as any)[k])}`);
  return `{${entries.join(',')}}`;
}

/** Cursors are "<store>:<position>": later in the same store, or any position in another (moved) store. */
function isAfter(cursor: string, than: string | undefined): boolean {
  if (than === undefined) return true;
  const [store, position] = cursor.split(':');
  const [thanStore, thanPosition] = than.split(':');
  if (store !== thanStore) return true;
  return Number(position) > Number(thanPosition);
}

/** The event's cursor, and the result without the alias the tier added. */
function splitCursor(result: ExecutionResult, responseKey: string): [string | undefined, ExecutionResult] {
  const payload = (result.data as Record<string, any> | null | undefined)?.[responseKey];
  if (!payload || typeof payload !== 'object' || !(CURSOR_ALIAS in payload)) return [undefined, result];
  const { [CURSOR_ALIAS]: cursor, ...rest } = payload;
  return [typeof cursor === 'string' ? cursor : undefined, { ...result, data: { ...result.data, [responseKey]: rest } }];
}

function errorResult(code: string, message: string): ExecutionResult {
  return { errors: [new GraphQLError(message, { extensions: { code } })] };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return value != null && typeof (value as any)[Symbol.asyncIterator] === 'function';
}

/** Whether the client asked for the live signal (its request's extensions; the WebSocket subscribe
 * message's and an HTTP request's both land in `params`). */
function wantsLiveSignal(context: any): boolean {
  return context?.params?.extensions?.[LIVE_REQUEST] === true;
}

/** A subscription executed for its client alone (not through a shared stream): with the live signal when
 * the client asked, the subgraph's answer turned into the client's. */
export function unshared(args: ExecutionArgs, original: Subscribe): any {
  const context = args.contextValue as any;
  if (!wantsLiveSignal(context)) return original(args);
  // The per-subscriber tracing plugin may have put a carrier there first: share it.
  const carrier: TraceCarrier = (context[TRACE_CARRIER] ??= {});
  context[LIVE_CONTEXT_KEY] = '1';
  const signalled = (result: unknown): unknown => {
    if (!isAsyncIterable(result)) return result;
    const source = result[Symbol.asyncIterator]();
    // Not an async generator: `return` must reach the upstream at once, not after its next event.
    const iterator: AsyncIterableIterator<ExecutionResult> = {
      async next() {
        const step = await source.next();
        if (step.done || !carrier.live) return step;
        carrier.live = false;
        return { value: LIVE_RESULT, done: false };
      },
      return: () => source.return?.() ?? Promise.resolve({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  };
  const result = original(args);
  return typeof result?.then === 'function' ? result.then(signalled) : signalled(result);
}

// ------------------------------------------------------------------------------------------------
// one socket's subscription

class Listener implements AsyncIterableIterator<ExecutionResult> {
  readonly [SHARED_DELIVERY] = true;
  private queue: ExecutionResult[] = [];
  private wake: ((r: IteratorResult<ExecutionResult>) => void) | undefined;
  private finished = false;
  catchingUp = false;
  pending: [string, ExecutionResult][] = [];
  lastCursor: string | undefined;
  onClose: (() => void) | undefined;
  onJoin: (() => void) | undefined;
  private liveSent = false;
  private roomWaiter: (() => void) | undefined;

  constructor(
    readonly userId: string,
    private readonly limit: number,
    private readonly wantsLive = false,
  ) {}

  /** The stream this socket reads is live: tell the client, once, if it asked. */
  signalLive(): void {
    if (!this.wantsLive || this.liveSent || this.finished) return;
    this.liveSent = true;
    this.push(LIVE_RESULT);
  }

  get closed(): boolean {
    return this.finished;
  }

  /** An event of the shared stream. */
  offer(cursor: string | undefined, result: ExecutionResult): void {
    if (this.finished) return;
    if (this.catchingUp) {
      if (cursor === undefined) return; // ephemeral (typing): the own execution delivers those
      if (this.lastCursor !== undefined && !isAfter(cursor, this.lastCursor)) {
        // The own execution already delivered this event: the shared stream has caught up with it.
        this.pending.push([cursor, result]);
        return this.joinShared();
      }
      if (this.pending.length >= this.limit) return this.cutOff();
      this.pending.push([cursor, result]);
      return;
    }
    this.deliver(cursor, result);
  }

  /** From now on, only the shared stream: what it sent meanwhile first (minus what was delivered). */
  joinShared(): void {
    if (!this.catchingUp) return;
    this.catchingUp = false;
    const pending = this.pending;
    this.pending = [];
    for (const [cursor, result] of pending) this.deliver(cursor, result);
    this.onJoin?.();
  }

  deliver(cursor: string | undefined, result: ExecutionResult): void {
    if (this.finished) return;
    if (cursor !== undefined) {
      if (!isAfter(cursor, this.lastCursor)) return; // already delivered
      this.lastCursor = cursor;
    }
    if (this.queue.length >= this.limit) return this.cutOff();
    this.push(result);
  }

  /** Ends with one last result (an error), dropping whatever was still queued if `drop`. */
  fail(result: ExecutionResult, drop = false): void {
    if (this.finished) return;
    if (drop) this.queue = [];
    this.push(result);
    this.end();
  }

  complete(): void {
    this.end();
  }

  private cutOff(): void {
    this.fail(
      errorResult(
        'SLOW_CONSUMER',
        `This subscription fell ${this.limit} events behind and was ended: subscribe again with the last cursor you received as \`after\`.`,
      ),
      true,
    );
  }

  /** Resolves once the socket can take one more event without being cut off (or has closed): a
   * catch-up the client asked for goes at the socket's pace; only live events can outrun it. */
  room(): Promise<void> {
    if (this.finished || this.queue.length < this.limit) return Promise.resolve();
    return new Promise((resolve) => (this.roomWaiter = resolve));
  }

  private freeRoom(): void {
    if (!this.roomWaiter || (!this.finished && this.queue.length >= this.limit)) return;
    const waiter = this.roomWaiter;
    this.roomWaiter = undefined;
    waiter();
  }

  private push(result: ExecutionResult): void {
    if (this.wake) {
      const wake = this.wake;
      this.wake = undefined;
      wake({ value: result, done: false });
    } else this.queue.push(result);
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.freeRoom();
    if (this.wake && this.queue.length === 0) {
      const wake = this.wake;
      this.wake = undefined;
      wake({ value: undefined, done: true });
    }
    this.onClose?.();
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const value = this.queue.shift();
    this.freeRoom();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.wake = resolve));
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    this.queue = [];
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ExecutionResult> {
    return this;
  }
}

// ------------------------------------------------------------------------------------------------
// one shared stream

type Subscribe = (args: ExecutionArgs) => any;

class SharedStream {
  readonly listeners = new Set<Listener>();
  servers = new Set<string>();
  lastCursor: string | undefined;
  // Where the upstream said it is live from (the live signal's cursor): before the first event, a reopen
  // replays from here, so what its channel published while the upstream was lost still arrives.
  private liveFrom: string | undefined;
  private upstream: AsyncIterator<ExecutionResult> | undefined;
  // The trace context of the upstream event being rendered (tracing.ts): the subgraph sends it in its
  // result's extensions, which the gateway drops; `useSharedSubscriptions` catches it on the way in.
  private readonly trace: TraceCarrier = {};
  private leader: string | undefined;
  private stopped = false;
  private reopening = false;
  // While an access change of the stream's servers is being re-checked, events wait here: none reaches
  // a socket whose access is in question before the subgraph has answered.
  holds = 0;
  private held: [string | undefined, ExecutionResult][] = [];
  // The upstream has announced it is live (the live signal): a socket that joins now is live at once.
  private live = false;

  constructor(
    readonly key: string,
    readonly field: string,
    readonly owner: string,
    readonly responseKey: string,
    readonly argumentsForCheck: Record<string, unknown>,
    private readonly args: ExecutionArgs,
    private readonly hasAfter: boolean,
    private readonly tier: FanoutTier,
    // Rendered for one user (a @viewerDependent selection): the execution runs as that user, so the
    // subgraph's own checks are exact for it and end it as before (e.g. serverEvents sends the member's
    // own KICKED event, then FORBIDDEN). The tier then passes the end through instead of re-checking.
    readonly perUser: boolean,
    // A field whose every event is the whole current state (voiceStateEvents: the call's participants,
    // a snapshot first): a socket that joins the running stream gets the last state written to the
    // others at once, as its own execution would have started with a snapshot. Nothing older can follow
    // it: it was written last, and later events come after it.
    readonly state: boolean,
  ) {}

  latest: ExecutionResult | undefined;

  /** The cursor a fresh upstream replays from: the last event rendered, else where the last one was live. */
  private resumeFrom(): string | undefined {
    return this.lastCursor ?? this.liveFrom;
  }

  add(listener: Listener): void {
    this.listeners.add(listener);
    listener.onClose = () => this.remove(listener);
    if (this.live) listener.signalLive();
    if (this.latest) listener.offer(undefined, this.latest);
  }

  private remove(listener: Listener): void {
    this.listeners.delete(listener);
    if (this.listeners.size === 0) this.stop();
  }

  /** Renders from the last cursor on a fresh upstream (its connection was lost: upstream.ts). Events
   * published meanwhile are replayed, duplicates dropped by cursor. */
  reopen(): void {
    if (this.stopped || !this.upstream) return;
    this.reopening = true;
    void this.upstream.return?.();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.tier.streamStopped(this);
    void this.upstream?.return?.();
  }

  private contextFor(userId: string): any {
    const credential = this.tier.credential(userId);
    const template = this.args.contextValue as Record<string, unknown>;
    return {
      ...template,
      headers: { authorization: credential },
      connectionParams: { authorization: credential },
      request: new Request('http://fanout.internal/graphql', { method: 'POST', headers: { authorization: credential } }),
      [TRACE_CARRIER]: this.trace,
      [LIVE_CONTEXT_KEY]: '1', // the upstream announces when it is live (see `run`)
      req: undefined,
      socket: undefined,
      jwt: undefined,
    };
  }

  /** Renders the stream until no listener is left, reopening (from the last cursor) when it ends. */
  async run(subscribe: Subscribe): Promise<void> {
    let failures = 0;
    let failingSince: number | undefined;
    let openedAt: number | undefined;
    while (!this.stopped && this.listeners.size > 0) {
      openedAt = undefined;
      const users = new Set([...this.listeners].map((l) => l.userId));
      const leader = this.leader && users.has(this.leader) ? this.leader : [...users][0]!;
      this.leader = leader;
      let ended: ExecutionResult | undefined;
      let completed = false;
      try {
        const variableValues = { ...(this.args.variableValues ?? {}) };
        if (this.hasAfter) variableValues[AFTER_VAR] = this.resumeFrom() ?? null;
        const result = await subscribe({ ...this.args, variableValues, contextValue: this.contextFor(leader) });
        if (!isAsyncIterable(result)) {
          ended = result as ExecutionResult;
        } else {
          this.upstream = result[Symbol.asyncIterator]();
          openedAt = Date.now();
          if (this.stopped) await this.upstream.return?.();
          for (;;) {
            const step = await this.upstream.next();
            if (step.done) {
              completed = true;
              break;
            }
            const value = step.value;
            if (this.trace.live) {
              // The subgraph's live signal (no data): not an event; the sockets waiting for it are live.
              this.trace.live = false;
              this.liveFrom = this.trace.liveFrom ?? this.liveFrom;
              this.live = true;
              for (const listener of this.listeners) listener.signalLive();
              continue;
            }
            const payload = (value.data as any)?.[this.responseKey];
            if (value.errors?.length && (payload === null || payload === undefined)) {
              ended = value;
              break;
            }
            failures = 0;
            failingSince = undefined;
            this.publish(value);
          }
        }
      } catch (e) {
        ended = errorResult('INTERNAL_SERVER_ERROR', 'The live stream failed.');
        this.tier.log.warn({ err: String(e), field: this.field }, '[beep-fanout] upstream failed');
      }
      this.upstream = undefined;
      this.trace.live = false;
      // Until the next upstream is live, a socket that joins waits for it, unless that upstream replays
      // from this stream's last cursor (what is published meanwhile is replayed: no gap).
      this.live = this.hasAfter && this.resumeFrom() !== undefined;
      if (this.stopped) return;
      if (this.reopening) {
        this.reopening = false;
        continue;
      }
      if (completed && !ended) {
        // The subgraph ended the stream on purpose (e.g. the server was deleted): so does every socket.
        for (const listener of [...this.listeners]) listener.complete();
        return;
      }
      if (this.perUser && ended) {
        for (const listener of [...this.listeners]) listener.fail(ended);
        return;
      }
      // Whoever lost access is told so; the others continue as another subscriber, from the last cursor.
      await this.tier.recheck(this, 'reopen');
      if (ended) {
        // A subgraph restarting (a pod rescheduled, a process killed) takes seconds, more on a busy node:
        // keep reopening with backoff for UPSTREAM_PATIENCE_MS before telling the sockets, which then
        // resume by themselves from their cursors.
        if (openedAt !== undefined && Date.now() - openedAt > UPSTREAM_PATIENCE_MS) {
          failures = 0; // it had been up a while: a new outage, with its own patience
          failingSince = undefined;
        }
        failures++;
        failingSince ??= Date.now();
        if (Date.now() - failingSince >= UPSTREAM_PATIENCE_MS) {
          for (const listener of [...this.listeners]) listener.fail(ended);
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (failures - 1), 2000)));
      }
    }
  }

  release(): void {
    if (--this.holds > 0) return;
    const held = this.held;
    this.held = [];
    for (const [cursor, result] of held) this.broadcast(cursor, result);
  }

  private broadcast(cursor: string | undefined, result: ExecutionResult): void {
    if (this.state) this.latest = result;
    for (const listener of this.listeners) listener.offer(cursor, result);
  }

  private publish(result: ExecutionResult): void {
    const traceparent = this.trace.traceparent;
    this.trace.traceparent = undefined;
    // The subgraph's delivery context (kernel/tracing.py), continued here; none: outside any trace.
    const attributes = { 'beep.field': this.field, 'beep.sockets': this.listeners.size, 'beep.shared': true };
    deliveredInTrace(traceparent, attributes, () => this.render(result));
  }

  private render(result: ExecutionResult): void {
    const [cursor, clean] = splitCursor(result, this.responseKey);
    if (cursor !== undefined) {
      if (!isAfter(cursor, this.lastCursor)) return; // replayed twice across a reopen
      this.lastCursor = cursor;
    }
    if (this.holds > 0) this.held.push([cursor, clean]);
    else this.broadcast(cursor, clean);
  }
}

// ------------------------------------------------------------------------------------------------
// coalescing: a herd of sockets (a router restart, a popular channel) asks once per batch, not once each

/** Items added under one key while a call for that key is in flight wait for the next call, which
 * takes them all (at most `max` per call): at most one call in flight per key. */
class Coalescer<I, R> {
  private readonly queued = new Map<string, { items: I[]; waiters: [(r: R) => void, (e: unknown) => void][] }>();
  private readonly busy = new Set<string>();

  constructor(
    private readonly call: (key: string, items: I[]) => Promise<R>,
    private readonly max: number,
  ) {}

  add(key: string, item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let batch = this.queued.get(key);
      if (!batch) this.queued.set(key, (batch = { items: [], waiters: [] }));
      batch.items.push(item);
      batch.waiters.push([resolve, reject]);
      if (!this.busy.has(key)) {
        this.busy.add(key);
        setImmediate(() => void this.flush(key)); // what arrives in the same turn joins this call
      }
    });
  }

  private async flush(key: string): Promise<void> {
    const batch = this.queued.get(key);
    if (!batch) {
      this.busy.delete(key);
      return;
    }
    const items = batch.items.splice(0, this.max);
    const waiters = batch.waiters.splice(0, items.length);
    if (batch.items.length === 0) this.queued.delete(key);
    try {
      const result = await this.call(key, items);
      for (const [resolve] of waiters) resolve(result);
    } catch (e) {
      for (const [, reject] of waiters) reject(e);
    }
    if (this.queued.has(key)) void this.flush(key);
    else this.busy.delete(key);
  }
}

/** At most `limit` calls running; the others start in the order they came as running ones end. */
class Slots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running++;
    else await new Promise<void>((start) => this.waiting.push(start)); // handed a slot by one ending
    try {
      return await call();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// the tier

export class FanoutTier {
  readonly facts: SupergraphFacts;
  private readonly streams = new Map<string, SharedStream>();
  private readonly notShared = new Set<string>();
  private readonly feeds = new Map<string, AbortController>();
  private readonly instance = randomBytes(6).toString('hex');
  private socketSeq = 0;
  private readonly sockets = new Map<any, { id: string; userId: string; owner: string }>();
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly checks = new Coalescer<string, Verdict>((key, users) => {
    const [owner, field, args] = JSON.parse(key) as [string, string, Record<string, unknown>];
    return this.check(owner, field, args, [...new Set(users)], false, 'subscribe');
  }, 1000);
  private readonly presenceChanges = new Coalescer<[boolean, string, string], void>(
    (owner, items) =>
      this.presence(
        owner,
        items.filter(([touch]) => touch).map(([, u, c]) => [u, c]),
        items.filter(([touch]) => !touch).map(([, u, c]) => [u, c]),
      ),
    1000,
  );
  private readonly recheckTimer: NodeJS.Timeout;
  private recheckCursor = 0;
  private readonly recheckSlots = new Map<string, Slots>();
  private readonly pacedRechecks = new Set<SharedStream>(); // waiting or in flight

  constructor(readonly options: FanoutOptions) {
    this.facts = readSupergraph(options.supergraphPath);
    this.recheckTimer = setInterval(() => this.recheckSlice(), 1000);
    this.recheckTimer.unref();
  }

  /** The periodic second line, spread out: each second the next ceil(streams / recheckSeconds) streams in
   * turn, so each is re-asked once per period without a burst of every stream at the same instant. */
  private recheckSlice(): void {
    const streams = [...this.streams.values()];
    if (streams.length === 0) return;
    const count = Math.min(streams.length, Math.ceil(streams.length / this.options.recheckSeconds));
    const start = this.recheckCursor % streams.length;
    for (let i = 0; i < count; i++) void this.recheckPaced(streams[(start + i) % streams.length], 'periodic');
    this.recheckCursor = (start + count) % streams.length;
  }

  /** A background re-check: one at a time per stream, at most RECHECKS_IN_FLIGHT per subgraph. */
  private async recheckPaced(stream: SharedStream, reason: CheckReason): Promise<void> {
    if (this.pacedRechecks.has(stream)) return; // already waiting: that answer will be as fresh
    this.pacedRechecks.add(stream);
    let slots = this.recheckSlots.get(stream.owner);
    if (!slots) this.recheckSlots.set(stream.owner, (slots = new Slots(RECHECKS_IN_FLIGHT)));
    try {
      await slots.run(() => this.recheck(stream, reason));
    } finally {
      this.pacedRechecks.delete(stream);
    }
  }

  /** A connection to `subgraph` was lost (upstream.ts): its streams reopen from their last cursors before
   * the transport's client would resubscribe them with the cursors they were opened at. */
  upstreamDropped(subgraph: string): void {
    let reopened = 0;
    for (const stream of this.streams.values()) {
      if (stream.owner !== subgraph) continue;
      stream.reopen();
      reopened++;
    }
    if (reopened) this.log.info({ subgraph, streams: reopened }, '[beep-fanout] upstream connection lost: reopening');
  }

  get log(): Log {
    return this.options.log;
  }

  credential(userId: string): string {
    return fanoutCredential(this.options.secret, userId);
  }

  streamStopped(stream: SharedStream): void {
    if (this.streams.get(stream.key) === stream) this.streams.delete(stream.key);
  }

  private base(owner: string): string {
    const base = this.options.subgraphBase(owner);
    if (!base) throw new Error(`no URL for subgraph ${owner}`);
    return base;
  }

  private async check(
    owner: string,
    field: string,
    args: Record<string, unknown>,
    users: string[],
    renewal: boolean,
    reason: CheckReason,
  ): Promise<Verdict> {
    this.options.observe?.checked(reason);
    const answer = await postInternal(this.options.secret, `${this.base(owner)}/internal/live-access`, {
      field,
      arguments: args,
      users,
      renewal,
    });
    const denied = new Map<string, Denial>(Object.entries(answer.denied ?? {}) as [string, Denial][]);
    return {
      shared: answer.shared === true,
      state: answer.state === true,
      allowed: new Set<string>(answer.allowed ?? []),
      denied,
      servers: new Set<string>(answer.servers ?? []),
    };
  }

  /** Asks again for every socket of a stream; those no longer allowed get their error and complete.
   * With `hold` (an announced access change), the stream's events wait until the answer is in. */
  async recheck(stream: SharedStream, reason: CheckReason, hold = false): Promise<void> {
    const users = [...new Set([...stream.listeners].map((l) => l.userId))];
    if (users.length === 0 || stream.perUser) return;
    if (hold) stream.holds++;
    let verdict: Verdict;
    try {
      // At most 1,000 users per call (a subgraph takes up to 5,000): a big channel asks in slices.
      const slices = [];
      for (let i = 0; i < users.length; i += 1000) {
        const slice = users.slice(i, i + 1000);
        slices.push(this.check(stream.owner, stream.field, stream.argumentsForCheck, slice, true, reason));
      }
      const answers = await Promise.all(slices);
      verdict = {
        shared: true,
        state: stream.state,
        allowed: new Set(answers.flatMap((a) => [...a.allowed])),
        denied: new Map(answers.flatMap((a) => [...a.denied])),
        servers: new Set(answers.flatMap((a) => [...a.servers])),
      };
    } catch (e) {
      this.log.warn({ err: String(e), field: stream.field }, '[beep-fanout] access re-check failed');
      if (hold) stream.release();
      return;
    }
    stream.servers = verdict.servers;
    for (const listener of [...stream.listeners]) {
      const denial = verdict.denied.get(listener.userId);
      if (denial) listener.fail(errorResult(denial.code, denial.message), true);
    }
    if (hold) stream.release();
  }

  private ensureFeed(owner: string): void {
    if (this.feeds.has(owner)) return;
    const controller = new AbortController();
    this.feeds.set(owner, controller);
    void this.followFeed(owner, controller.signal);
  }

  /** Access changes announced by a subgraph: re-check the streams of that server at once. */
  private async followFeed(owner: string, signal: AbortSignal): Promise<void> {
    let connectedBefore = false;
    while (!signal.aborted) {
      try {
        const response = await fetch(`${this.base(owner)}/internal/access-changes`, {
          headers: { 'beep-internal-signature': signature(this.options.secret, '') },
          signal,
        });
        if (!response.ok || !response.body) throw new Error(`access-changes answered ${response.status}`);
        const decoder = new TextDecoder();
        let buffered = '';
        for await (const chunk of response.body as any as AsyncIterable<Uint8Array>) {
          buffered += decoder.decode(chunk, { stream: true });
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            const notice = line ? JSON.parse(line) : {};
            if (notice.ready) {
              this.options.observe?.feedConnected(owner);
              // Changes made while the feed was down were not heard: ask again for everyone (paced).
              if (connectedBefore) {
                for (const s of this.streams.values()) if (s.owner === owner) void this.recheckPaced(s, 'feed_reconnect');
              }
              connectedBefore = true;
            } else if (notice.serverId) {
              for (const s of this.streams.values()) {
                if (s.owner === owner && s.servers.has(String(notice.serverId))) void this.recheck(s, 'access_change', true);
              }
            }
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        this.log.warn({ err: String(e), subgraph: owner }, '[beep-fanout] access-change feed lost; reconnecting');
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  // presence: each client socket that holds shared subscriptions counts as a connection of its user

  /** The socket counts for its user's presence from its first shared subscription until it closes. It is
   * announced before the subscription starts, as a subgraph's own connection was: the user's streams do
   * not carry their own arrival. */
  private async socketHeld(socket: any, userId: string, owner: string): Promise<void> {
    if (!socket) return;
    if (this.sockets.has(socket)) return; // presence follows the socket, not each subscription
    const entry = { id: `${this.instance}-${++this.socketSeq}`, userId, owner };
    this.sockets.set(socket, entry);
    socket.once?.('close', () => {
      if (this.sockets.get(socket) !== entry) return;
      this.sockets.delete(socket);
      void this.presenceChanges.add(owner, [false, entry.userId, entry.id]);
    });
    await this.presenceChanges.add(owner, [true, entry.userId, entry.id]);
  }

  private async presence(owner: string, touch: [string, string][], drop: [string, string][]): Promise<void> {
    try {
      const answer = await postInternal(this.options.secret, `${this.base(owner)}/internal/presence`, { touch, drop });
      if (!this.presenceTimer && typeof answer.ttlSeconds === 'number') {
        this.presenceTimer = setInterval(() => this.renewPresence(), (answer.ttlSeconds * 1000) / 3);
        this.presenceTimer.unref();
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, '[beep-fanout] presence update failed');
    }
  }

  private renewPresence(): void {
    for (const entry of this.sockets.values()) void this.presenceChanges.add(entry.owner, [true, entry.userId, entry.id]);
  }


  // subscribing

  async subscribe(args: ExecutionArgs, original: Subscribe): Promise<any> {
    const op = getOperationAST(args.document, args.operationName);
    const field = op && op.operation === 'subscription' ? rootField(op) : undefined;
    const context = args.contextValue as any;
    const userId = context?.jwt?.payload?.beep_user_id;
    const owner = field ? this.facts.owners.get(field.name.value) : undefined;
    if (!op || !field || !owner || userId == null || this.notShared.has(field.name.value)) return unshared(args, original);
    const name = field.name.value;
    const schema = args.schema;
    const def = schema.getSubscriptionType()?.getFields()[name];
    if (!def) return unshared(args, original);
    const values = getArgumentValues(def, field, args.variableValues ?? {});
    const { after, ...rest } = values as Record<string, unknown>;
    const afterArgument = field.arguments?.find((a) => a.name.value === 'after');
    const afterVariable = afterArgument?.value.kind === Kind.VARIABLE ? afterArgument.value.name.value : undefined;
    const hasAfter = def.args.some((a) => a.name === 'after');

    await this.socketHeld(context?.socket, String(userId), owner);
    let verdict: Verdict;
    try {
      verdict = await this.checks.add(JSON.stringify([owner, name, rest]), String(userId));
    } catch (e) {
      this.log.warn({ err: String(e), field: name }, '[beep-fanout] access check failed; executing per subscriber');
      return unshared(args, original);
    }
    if (!verdict.shared) {
      this.notShared.add(name);
      return unshared(args, original);
    }
    const denial = verdict.denied.get(String(userId));
    if (denial || !verdict.allowed.has(String(userId))) {
      const listener = new Listener(String(userId), 1);
      listener.fail(errorResult(denial?.code ?? 'NOT_FOUND', denial?.message ?? 'Not found.'));
      return listener;
    }

    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of args.document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    const perViewer =
      this.facts.viewerDependent.has(`Subscription.${name}`) ||
      (field.selectionSet !== undefined &&
        touchesViewer(schema, this.facts, getNamedType(def.type), field.selectionSet, fragments, new Set()));
    const document = sharedDocument(schema, args.document, op, field, hasAfter, afterVariable);
    const variables = { ...(args.variableValues ?? {}) };
    if (afterVariable) delete variables[afterVariable];
    const key = stable([print(document), args.operationName ?? null, variables, perViewer ? `user:${userId}` : 'shared']);
    const responseKey = field.alias?.value ?? name;

    const listener = new Listener(String(userId), this.options.bufferLimit, wantsLiveSignal(context));
    let stream = this.streams.get(key);
    const fresh = !stream;
    if (!stream) {
      stream = new SharedStream(
        key,
        name,
        owner,
        responseKey,
        rest,
        { ...args, document, variableValues: variables, operationName: args.operationName },
        hasAfter,
        this,
        perViewer,
        verdict.state,
      );
      this.streams.set(key, stream);
    }
    stream.servers = new Set([...stream.servers, ...verdict.servers]);
    stream.add(listener);
    this.ensureFeed(owner);
    if (typeof after === 'string' && hasAfter) {
      listener.catchingUp = true;
      void this.catchUp(listener, args, document, variables, after, responseKey, original);
    }
    if (fresh) {
      this.log.info({ field: name, viewer: perViewer ? 'user' : 'shared', streams: this.streams.size }, '[beep-fanout] stream opened');
      const shared = stream;
      void shared.run(original).finally(() => shared.stop());
    }
    return listener;
  }

  /** What the socket missed since `after`, from its own execution, until it meets the shared stream. */
  private async catchUp(
    listener: Listener,
    args: ExecutionArgs,
    document: DocumentNode,
    variables: Record<string, unknown>,
    after: string,
    responseKey: string,
    original: Subscribe,
  ): Promise<void> {
    let own: AsyncIterator<ExecutionResult> | undefined;
    listener.onJoin = () => void own?.return?.();
    try {
      const result = await original({ ...args, document, variableValues: { ...variables, [AFTER_VAR]: after } });
      if (!isAsyncIterable(result)) {
        listener.fail(result as ExecutionResult);
        return;
      }
      own = result[Symbol.asyncIterator]();
      if (!listener.catchingUp || listener.closed) return;
      for (;;) {
        const step = await own.next();
        if (step.done || !listener.catchingUp || listener.closed) break;
        const payload = (step.value.data as any)?.[responseKey];
        if (step.value.errors?.length && (payload === null || payload === undefined)) {
          listener.fail(step.value, true);
          return;
        }
        const [cursor, clean] = splitCursor(step.value, responseKey);
        await listener.room();
        if (listener.closed) break;
        listener.deliver(cursor, clean);
        if (cursor !== undefined && listener.pending.some(([c]) => !isAfter(c, cursor) || c === cursor)) {
          listener.joinShared();
          break;
        }
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, '[beep-fanout] catch-up failed');
      listener.fail(errorResult('INTERNAL_SERVER_ERROR', 'Resuming the live stream failed.'), true);
      return;
    } finally {
      void own?.return?.();
    }
    listener.joinShared();
  }
}

/** The gateway plugin: every subscription goes through the tier; without one (BEEP_FANOUT=false), each
 * is executed for its client alone, still with the live signal when asked. (Each event's delivery context
 * — trace context, live-signal mark — comes in through tracing.ts's useDeliveryContexts.) */
export function useSharedSubscriptions(tier: FanoutTier | undefined): any {
  return {
    onSubscribe({ subscribeFn, setSubscribeFn }: { subscribeFn: Subscribe; setSubscribeFn: (fn: Subscribe) => void }) {
      setSubscribeFn((args: ExecutionArgs) => (tier ? tier.subscribe(args, subscribeFn) : unshared(args, subscribeFn)));
    },
  };
}
