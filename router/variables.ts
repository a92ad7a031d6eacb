// Variables checked against the operation's declared types before execution, when the gateway runs Hive
// Router's runtime (BEEP_ROUTER_RUNTIME=router). graphql-js, which executes for the stitching runtime,
// refuses a variable its type refuses (an Int beyond 32 bits, a string where an input object is declared)
// before executing: `errors` and no `data`, HTTP 400 under the GraphQL-over-HTTP media type. The router
// runtime's executor answers the same request with `data: null` (HTTP 200). This check gives both runtimes
// one contract.
import { GraphQLError, getOperationAST, getVariableValues, type ExecutionArgs, type ExecutionResult } from 'graphql';

type Stop = (result: ExecutionResult) => void;

function refuseInvalidVariables(args: ExecutionArgs, stop: Stop): void {
  const definitions = getOperationAST(args.document, args.operationName)?.variableDefinitions;
  if (!definitions?.length) return;
  const coerced = getVariableValues(args.schema, definitions, args.variableValues ?? {}, { maxErrors: 50 });
  if (!coerced.errors) return;
  // As @graphql-tools/executor marks them (the stitching runtime's executor): a request error, HTTP 400.
  stop({
    errors: coerced.errors.map(
      (error) =>
        new GraphQLError(error.message, {
          nodes: error.nodes,
          extensions: { ...error.extensions, http: { status: 400 } },
        }),
    ),
  });
}

export function useVariableCheck() {
  return {
    onExecute({ args, setResultAndStopExecution }: { args: ExecutionArgs; setResultAndStopExecution: Stop }) {
      refuseInvalidVariables(args, setResultAndStopExecution);
    },
    onSubscribe({ args, setResultAndStopExecution }: { args: ExecutionArgs; setResultAndStopExecution: Stop }) {
      refuseInvalidVariables(args, setResultAndStopExecution);
    },
  };
}
