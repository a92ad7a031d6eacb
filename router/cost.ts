// Demand control: an operation's estimated cost is computed before it runs and refused above a ceiling.
//
// The bounds come from the subgraphs' own schema: every list field declares Federation 2.9's
// `@listSize` (composed into the supergraph as `@listSize` of https://specs.apollo.dev/cost/v0.1), and a
// field or type may carry `@cost(weight:)`. The model is the one of the IBM cost specification that
// Apollo and Hive implement:
//
//   - a field of an object, interface or union type costs 1, a scalar or enum field 0 (unless `@cost`);
//   - a list field multiplies the cost of everything selected under it by its size: the value of its
//     slicing argument (`first`, from the literal, the variable, or the argument's default), else its
//     `assumedSize`; with `sizedFields: ["edges"]` the size applies to those child fields instead (a
//     connection's `edges`), the field itself counting once;
//   - fragments count as if written inline; every branch of an abstract type is counted (an upper
//     bound); aliases count each time; introspection and `__typename` cost nothing;
//   - a mutation adds 10.
//
// Hive Gateway's own `demandControl` option estimates per subgraph request while the plan runs (the
// first subgraphs have already been called when the sum crosses the limit, and `_entities` fetches are
// priced with assumed sizes), and its estimate depends on the query plan; this one prices the client's
// operation on the supergraph, once, before anything is sent. Its error has the same shape:
// `COST_ESTIMATED_TOO_EXPENSIVE` with `extensions.cost = { estimated, max }`.
import { readFileSync } from 'node:fs';
import {
  GraphQLError,
  Kind,
  getNamedType,
  getVariableValues,
  isCompositeType,
  isListType,
  isNonNullType,
  isObjectType,
  isInterfaceType,
  parse,
  type DirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

export const COST_CODE = 'COST_ESTIMATED_TOO_EXPENSIVE';
/**
 * BEEP_ROUTER_MAX_COST's default. The costliest operation a Beep client sends in the repository's tests
 * is priced about 14,000 (all conversations with their participants); a channel's history page of 100
 * messages selecting everything a client shows (author, reactions, mentions, attachments, embeds, link
 * previews, the message replied to) about 52,000. The exponential shape of issue 15,
 * `channel { server { channels { server { channels { id } } } } }`, is priced 251,002 at one level.
 */
export const DEFAULT_MAX_COST = 200_000;
/** Prices a list field that declares no bound (none should: tests/unit/test_list_bounds.py). */
export const DEFAULT_LIST_SIZE = 100;
const MUTATION_COST = 10;

type ListSize = { assumedSize?: number; slicingArguments?: string[]; sizedFields?: string[] };
/** `Type.field` → its declared bounds and weights, read from the supergraph's SDL. */
export type CostDirectives = {
  listSize: Map<string, ListSize>;
  fieldWeight: Map<string, number>;
  typeWeight: Map<string, number>;
};

// The supergraph names them after its @link import (`@listSize`), or with the spec's prefix when not
// imported (`@cost__listSize`); a subgraph SDL may also carry federation's prefix.
const NAMES = {
  listSize: ['listSize', 'cost__listSize', 'federation__listSize'],
  cost: ['cost', 'cost__cost', 'federation__cost'],
};

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.INT:
      return Number(node.value);
    case Kind.STRING:
      return node.value;
    case Kind.BOOLEAN:
      return node.value;
    case Kind.LIST:
      return node.values.map(literal);
    default:
      return undefined;
  }
}

function argument(directive: DirectiveNode, name: string): unknown {
  const found = directive.arguments?.find((a) => a.name.value === name);
  return found ? literal(found.value) : undefined;
}

/** The `@listSize` and `@cost` directives of an SDL (the supergraph's). */
export function costDirectivesOf(sdl: string | DocumentNode): CostDirectives {
  const document = typeof sdl === 'string' ? parse(sdl) : sdl;
  const found: CostDirectives = { listSize: new Map(), fieldWeight: new Map(), typeWeight: new Map() };
  const weightOf = (directives: readonly DirectiveNode[] | undefined) => {
    const cost = directives?.find((d) => NAMES.cost.includes(d.name.value));
    const weight = cost ? argument(cost, 'weight') : undefined;
    return typeof weight === 'number' && Number.isFinite(weight) ? weight : undefined;
  };
  for (const definition of document.definitions) {
    if (!('name' in definition) || !definition.name || !('directives' in definition)) continue;
    const typeName = definition.name.value;
    const typeWeight = weightOf(definition.directives);
    if (typeWeight !== undefined) found.typeWeight.set(typeName, typeWeight);
    if (!('fields' in definition) || !definition.fields) continue;
    for (const field of definition.fields) {
      const key = `${typeName}.${field.name.value}`;
      const weight = weightOf(field.directives);
      if (weight !== undefined) found.fieldWeight.set(key, weight);
      const listSize = field.directives?.find((d) => NAMES.listSize.includes(d.name.value));
      if (!listSize) continue;
      const assumed = argument(listSize, 'assumedSize');
      const strings = (name: string) => {
        const v = argument(listSize, name);
        return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : undefined;
      };
      found.listSize.set(key, {
        ...(typeof assumed === 'number' && Number.isFinite(assumed) ? { assumedSize: assumed } : {}),
        ...(strings('slicingArguments') ? { slicingArguments: strings('slicingArguments') } : {}),
        ...(strings('sizedFields') ? { sizedFields: strings('sizedFields') } : {}),
      });
    }
  }
  return found;
}

function listDepth(type: GraphQLType): number {
  let depth = 0;
  for (let t: GraphQLType = type; ; ) {
    if (isNonNullType(t)) t = t.ofType;
    else if (isListType(t)) {
      depth++;
      t = t.ofType;
    } else return depth;
  }
}

/**
 * The estimated cost of the operation `operationName` (or the only one) of `document`, its variables
 * coerced as execution would; null when they do not coerce (execution then refuses the request itself,
 * with its own error: an Int past 32 bits is a 400, not a cost). `defaultListSize` prices a list field
 * that declares no bound (none should: tests/unit/test_list_bounds.py). `coerce: false` prices the
 * variables as given (absent ones at their arguments' defaults): an operation read from source code.
 * `read.variables` is set when a variable's value sized a list (else the cost is the document's own).
 */
export function estimateCost(
  schema: GraphQLSchema,
  directives: CostDirectives,
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
  defaultListSize: number,
  { coerce = true, read }: { coerce?: boolean; read?: { variables: boolean } } = {},
): number | null {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const operations: OperationDefinitionNode[] = [];
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    else if (d.kind === Kind.OPERATION_DEFINITION) operations.push(d);
  }
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  if (!operation) return 0;
  const root =
    operation.operation === 'query'
      ? schema.getQueryType()
      : operation.operation === 'mutation'
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  if (!root) return 0;
  let vars: Record<string, unknown> = variables ?? {};
  if (coerce) {
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], vars, { maxErrors: 1 });
    if (coerced.errors) return null;
    vars = coerced.coerced;
  }

  const count = (value: unknown): number | undefined => {
    const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  // A slicing argument's value (literal or variable); absent, null or not a count: its default (a page
  // left null is served at the default size), else undefined (then `assumedSize`).
  const sliced = (field: GraphQLField<unknown, unknown>, node: FieldNode, bound: ListSize): number | undefined => {
    let size: number | undefined;
    for (const name of bound.slicingArguments ?? []) {
      const arg = node.arguments?.find((a) => a.name.value === name);
      if (arg?.value.kind === Kind.VARIABLE && read) read.variables = true;
      const given = !arg ? undefined : arg.value.kind === Kind.VARIABLE ? vars[arg.value.name.value] : literal(arg.value);
      const n = count(given) ?? count(field.args.find((a) => a.name === name)?.defaultValue);
      if (n !== undefined) size = Math.max(size ?? 0, n);
    }
    return size;
  };

  const visitSet = (
    set: SelectionSetNode,
    parent: GraphQLNamedType,
    factor: number,
    sized: Map<string, number>,
    path: Set<string>,
  ): number => {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const on = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (on) total += visitSet(selection.selectionSet, on, factor, sized, path);
        continue;
      }
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        if (!fragment || path.has(name)) continue; // unknown or cyclic: validation reports it
        const on = schema.getType(fragment.typeCondition.name.value);
        if (!on) continue;
        path.add(name);
        total += visitSet(fragment.selectionSet, on, factor, sized, path);
        path.delete(name);
        continue;
      }
      const name = selection.name.value;
      if (name.startsWith('__')) continue; // __typename, __schema, __type: free
      if (!isObjectType(parent) && !isInterfaceType(parent)) continue;
      const field = parent.getFields()[name];
      if (!field) continue; // validation reports it
      const key = `${parent.name}.${name}`;
      const named = getNamedType(field.type);
      const weight =
        directives.fieldWeight.get(key) ?? directives.typeWeight.get(named.name) ?? (isCompositeType(named) ? 1 : 0);
      let size = 1;
      let childSized = new Map<string, number>();
      const bound = directives.listSize.get(key);
      if (sized.has(name)) {
        size = sized.get(name)!;
      } else if (bound) {
        const slice = sliced(field, selection, bound);
        const n = slice ?? bound.assumedSize ?? defaultListSize;
        if (bound.sizedFields?.length) childSized = new Map(bound.sizedFields.map((f) => [f, n]));
        else size = n;
      } else if (listDepth(field.type) > 0) {
        size = defaultListSize * listDepth(field.type);
      }
      total += factor * size * weight;
      if (selection.selectionSet) total += visitSet(selection.selectionSet, named, factor * size, childSized, path);
    }
    return total;
  };

  const cost = visitSet(operation.selectionSet, root, 1, new Map(), new Set());
  return cost + (operation.operation === 'mutation' ? MUTATION_COST : 0);
}

export function costError(estimated: number, max: number, overWebSocket: boolean): GraphQLError {
  return new GraphQLError(`Operation estimated cost ${estimated} exceeded configured maximum ${max}`, {
    extensions: {
      code: COST_CODE,
      cost: { estimated, max },
      // A request error, as the router's other limits (validation): 400 under
      // application/graphql-response+json, 200 under application/json. Over a WebSocket it would be
      // sent verbatim, so it is left out there.
      ...(overWebSocket ? {} : { http: { spec: true, status: 400 } }),
    },
  });
}

type Args = {
  schema: GraphQLSchema;
  document: DocumentNode;
  variableValues?: Record<string, unknown> | null;
  operationName?: string | null;
  contextValue?: unknown;
};

/**
 * The gateway plugin: prices every query, mutation and subscription (HTTP, SSE and WebSocket alike) on
 * the supergraph before it executes; above `maxCost` the result is the cost error and nothing runs.
 * The bounds are re-read from `supergraphPath` whenever the gateway loads a new schema (hot reload).
 */
export function useCostLimit(options: { supergraphPath: string; maxCost: number; defaultListSize: number; log?: { warn: (...a: any[]) => void } }) {
  const bySchema = new WeakMap<GraphQLSchema, CostDirectives>();
  const directivesFor = (schema: GraphQLSchema): CostDirectives => {
    let found = bySchema.get(schema);
    if (!found) {
      try {
        found = costDirectivesOf(readFileSync(options.supergraphPath, 'utf8'));
      } catch (e) {
        options.log?.warn({ error: String(e) }, '[beep-router] cost: cannot read the supergraph; lists priced at the default size');
        found = { listSize: new Map(), fieldWeight: new Map(), typeWeight: new Map() };
      }
      bySchema.set(schema, found);
    }
    return found;
  };
  // Operations priced within the limit whatever their variables: a client sends the same few documents
  // again and again (the parser cache hands out the same DocumentNode), so they are priced once.
  const withinLimit = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Set<string>>>();
  const check = (args: Args, stop: (result: { errors: GraphQLError[] }) => void) => {
    let known = withinLimit.get(args.schema);
    if (!known) withinLimit.set(args.schema, (known = new WeakMap()));
    const operation = args.operationName ?? '';
    if (known.get(args.document)?.has(operation)) return;
    const read = { variables: false };
    const estimated = estimateCost(
      args.schema,
      directivesFor(args.schema),
      args.document,
      args.variableValues,
      args.operationName,
      options.defaultListSize,
      { read },
    );
    if (estimated !== null && estimated <= options.maxCost && !read.variables) {
      let operations = known.get(args.document);
      if (!operations) known.set(args.document, (operations = new Set()));
      operations.add(operation);
    }
    if (estimated !== null && estimated > options.maxCost) {
      const context = args.contextValue as { connectionParams?: unknown } | undefined;
      const overWebSocket = !!context && typeof context === 'object' && 'connectionParams' in context;
      stop({ errors: [costError(estimated, options.maxCost, overWebSocket)] });
    }
  };
  return {
    onExecute({ args, setResultAndStopExecution }: { args: Args; setResultAndStopExecution: (r: any) => void }) {
      check(args, setResultAndStopExecution);
    },
    onSubscribe({ args, setResultAndStopExecution }: { args: Args; setResultAndStopExecution: (r: any) => void }) {
      check(args, setResultAndStopExecution);
    },
  };
}
