"""Each subgraph's own limits, so that a request that reaches it anyway (past the router, which enforces
its own first) cannot exhaust its memory: the operation's depth, aliases and tokens, and a budget of list
items per response, counted while the response is completed so that the work stops at the budget rather
than being measured after it is built.

Depth and aliases are counted as the router counts them (router/gateway.config.ts: through fragments as
if they were written inline; introspection exempt from depth), and refused with its code and wording,
GRAPHQL_VALIDATION_FAILED. The limits are settings (`BEEP_MAX_QUERY_*`, `BEEP_MAX_RESPONSE_ITEMS`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    Lexer,
    Node,
    OperationDefinitionNode,
    Source,
    TokenKind,
    ValidationRule,
)
from graphql.execution.executor import CollectedErrors
from graphql.pyutils import Path
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.graphql import OperationType

from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.live_signal import event_result


@dataclass(frozen=True)
class Limits:
    depth: int
    tokens: int
    aliases: int
    response_items: int


def _setting(settings: Any, name: str) -> int:
    value = getattr(settings, name, None)
    return int(Settings.model_fields[name].default if value is None else value)


def limits_of(context: Any) -> Limits:
    """The limits of the request's process (its settings), or their defaults (a schema run without)."""
    settings = getattr(getattr(context, "runtime", None), "settings", None)
    return Limits(
        _setting(settings, "max_query_depth"),
        _setting(settings, "max_query_tokens"),
        _setting(settings, "max_query_aliases"),
        _setting(settings, "max_response_items"),
    )


# --- the operation's shape ------------------------------------------------------------------------------


def measure(context: Any, root: Node) -> tuple[int, int]:
    """(depth, aliases) of an operation, through its fragments (each measured once)."""
    fragments: dict[str, tuple[int, int]] = {}

    def visit(node: Node, visiting: set[str]) -> tuple[int, int]:
        if isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in visiting:  # a cycle: NoFragmentCyclesRule reports it
                return 0, 0
            if name not in fragments:
                fragment = context.get_fragment(name)
                visiting.add(name)
                fragments[name] = visit(fragment, visiting) if fragment else (0, 0)
                visiting.discard(name)
            return fragments[name]
        depth = aliases = 0
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            for selection in selection_set.selections:
                d, a = visit(selection, visiting)
                depth, aliases = max(depth, d), aliases + a
        if isinstance(node, FieldNode):
            introspection = node.name.value in ("__schema", "__type")
            return (0 if introspection else depth + 1), aliases + (1 if node.alias else 0)
        return depth, aliases

    return visit(root, set())


@functools.lru_cache(maxsize=8)
def limits_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """One class per pair of limits: Strawberry's validation cache is keyed by the rules it runs."""

    class OperationLimits(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            try:
                depth, aliases = measure(self.context, node)
            except RecursionError:  # nested past what Python recurses through: far past any limit
                depth, aliases = max_depth + 1, 0
            if depth > max_depth:
                self.report_error(
                    _limit_error(f"Query depth limit of {max_depth} exceeded, found {depth}.", node)
                )
            if aliases > max_aliases:
                self.report_error(
                    _limit_error(f"Aliases limit of {max_aliases} exceeded, found {aliases}.", node)
                )

    return OperationLimits


def _limit_error(message: str, node: Node | None = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": TopLevelCode.GRAPHQL_VALIDATION_FAILED.value})


@functools.lru_cache(maxsize=256)
def more_tokens_than(query: str, limit: int) -> bool:
    """Whether the document has more than `limit` tokens; lexing stops there. A lexing error is the
    parser's to report."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while lexer.advance().kind != TokenKind.EOF:
            count += 1
            if count > limit:
                return True
    except GraphQLError:
        return False
    return False


class RequestLimits(SchemaExtension):
    """Refuses a document of too many tokens before it is parsed (a token is at least a character: most
    documents are shorter than the limit and are not lexed here), adds the depth and alias rule to
    validation, and answers a query over its response budget with that error alone (no partial data)."""

    def on_operation(self) -> Iterator[None]:
        limits = limits_of(self.execution_context.context)
        rule = limits_rule(limits.depth, limits.aliases)
        self.execution_context.validation_rules = (*self.execution_context.validation_rules, rule)
        yield

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        limit = limits_of(self.execution_context.context).tokens
        if query and len(query) > limit and more_tokens_than(query, limit):
            raise BeepGraphQLError(
                f"Token limit of {limit} exceeded.", TopLevelCode.GRAPHQL_VALIDATION_FAILED
            )
        yield

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        over = next((e for e in errors if is_over_budget(e)), None)
        # A mutation's writes are done by then: its data stays, so that it does not read as not stored.
        if over is not None and result is not None and not self._is_mutation():
            result.data = None
            result.errors = [over]

    def _is_mutation(self) -> bool:
        try:
            return self.execution_context.operation_type is OperationType.MUTATION
        except Exception:  # no single operation to speak of: not one that wrote anything
            return False


# --- the response budget --------------------------------------------------------------------------------


class ResponseTooLarge(BeepGraphQLError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The response would hold more than {limit} list items: ask for fewer (smaller pages, "
            "fewer nested lists).",
            TopLevelCode.RESPONSE_TOO_LARGE,
        )


def is_over_budget(error: GraphQLError) -> bool:
    return isinstance(error, ResponseTooLarge) or isinstance(error.original_error, ResponseTooLarge)


@dataclass
class _Budget:
    limit: int
    used: int = 0


class _Errors(CollectedErrors):
    """Past the budget every list still pending fails: one error says it (the others null their field)."""

    def __init__(self) -> None:
        super().__init__()
        self.over_budget_reported = False

    def add(self, error: GraphQLError, path: Path | None) -> None:
        if is_over_budget(error):
            if self.over_budget_reported:
                self._error_positions.add(path)
                return
            self.over_budget_reported = True
        super().add(error, path)


class BudgetedExecution(StrawberryGraphQLCoreExecutionContext):
    """The executor of every subgraph schema: counts the items of each list it completes against the
    response budget, and past it fails every list it has yet to complete, so the work stops there (each
    item of a list completed is counted before its own fields are resolved). The count is shared with
    the executor's copies (graphql-core copies it for parts of one response) and starts again for each
    event of a subscription."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_budget = _Budget(limits_of(self.context_value).response_items)
        self.collected_errors = _Errors()

    def build_per_event_executor(self, payload: Any) -> Any:
        executor: BudgetedExecution = super().build_per_event_executor(payload)  # type: ignore[assignment]
        executor.response_budget = _Budget(self.response_budget.limit)
        executor.collected_errors = _Errors()
        # graphql-core 3.3 copies the subscription's executor for each event, sharing its memo of collected
        # sub-fields. The memo is keyed by the identity of lists each event builds anew, so it never hits
        # across events and grew by every event for as long as the subscription lived: a leak, and a
        # garbage collector's old generation of hundreds of thousands of objects (full collections of
        # 0.4 s, bench/README.md). Each event memoizes for itself.
        executor._relevant_sub_fields = {}
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        # The live signal is no event: nothing to resolve (kernel/web/live_signal.py).
        signalled = event_result(self.root_value)
        return signalled if signalled is not None else super().execute_operation(serially)

    def complete_list_value(  # type: ignore[override]
        self, return_type: Any, field_details_list: Any, info: Any, path: Any, result: Any, *rest: Any
    ) -> Any:
        if not isinstance(result, Sized) and isinstance(result, Iterable):
            result = list(result)  # counted like any list (graphql-core would iterate it anyway)
        if isinstance(result, Sized):
            budget = self.response_budget
            budget.used += len(result)
            if budget.used > budget.limit:
                raise ResponseTooLarge(budget.limit)
        return super().complete_list_value(return_type, field_details_list, info, path, result, *rest)
