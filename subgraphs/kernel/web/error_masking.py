"""The masking of unexpected errors and the refusal of text no store can hold: the schema extensions that
turn failures into the top-level errors of kernel/errors.py (a bug's details reach the logs, never a
client; a database or bus failing over becomes UNAVAILABLE, the client's cue to retry)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, Node, ValueNode, VariableDefinitionNode, VariableNode
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import MaskErrors, SchemaExtension

from db.failures import database_unavailable
from subgraphs.kernel.errors import TopLevelCode, bad_user_input
from subgraphs.kernel.events.bus import BusInterrupted
from subgraphs.kernel.i18n import translate
from subgraphs.kernel.redis_client import redis_unavailable
from subgraphs.kernel.wellformed import INVALID_TEXT, invalid_text_path

log = logging.getLogger("beep.errors")


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:  # syntax and validation errors carry no exception
        return True
    return isinstance(original, GraphQLError) and bool((original.extensions or {}).get("code"))


def _is_bad_request(error: GraphQLError, pre_execution: list[GraphQLError]) -> bool:
    """An error about the request itself rather than a resolver: a variable value its type refuses
    (`DateTime` "not-a-date", an Int beyond 32 bits; graphql-core names the variable's definition), or
    a literal refused while parsing or validating the document. Either way the sender's to fix.
    (The gateway's stitching runtime turns literals into variables; Hive Router's runtime sends them as
    written, and validation reports a literal refused by a Strawberry scalar as the scalar's own error,
    with no node, or one graphql-core refuses at the value, with no exception behind it.)"""
    if error.path is not None:
        return False
    nodes = error.nodes or ()
    if error.original_error is not None and any(isinstance(n, VariableDefinitionNode) for n in nodes):
        return True
    in_request = any(error is seen for seen in pre_execution)
    if error.original_error is not None:
        return in_request
    # Without an exception behind it, only a refused literal; other validation errors keep no code.
    literal = bool(nodes) and all(_is_literal(node) for node in nodes)
    return in_request and (literal or isinstance(error, StrawberryInputCoercionError))


def _is_literal(node: Node) -> bool:
    return isinstance(node, ValueNode) and not isinstance(node, VariableNode)


class MaskUnexpectedErrors(MaskErrors):
    """Hides bugs' details from clients (logged with a stack trace instead), keeping the error code.
    Errors in the request itself (see `_is_bad_request`) are the caller's: BAD_USER_INPUT, never masked."""

    def __init__(self) -> None:
        super().__init__(
            should_mask_error=lambda e: not _is_expected(e), error_message="Internal server error"
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        # MaskErrors' own loop (a private hook), with the request's errors set apart: should_mask_error
        # sees one error, and telling them apart needs the operation's pre-execution errors too.
        pre_execution = list(self.execution_context.pre_execution_errors or ())
        return [
            _as_bad_input(error)
            if _is_bad_request(error, pre_execution)
            else self.anonymise_error(error)
            if self.should_mask_error(error)
            else error
            for error in errors
        ]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is not None and database_unavailable(original):
            # A failover or a restart in progress: the client's cue to retry, not a bug.
            log.warning(
                "database unavailable", extra={"path": list(error.path or []), "error": repr(original)}
            )
            return GraphQLError(
                "The database is unavailable for a moment: try again.",
                nodes=error.nodes,
                path=error.path,
                extensions={"code": TopLevelCode.UNAVAILABLE.value},
            )
        if original is not None and (redis_unavailable(original) or isinstance(original, BusInterrupted)):
            # Redis lost or failing over: a live stream without a cursor to resume from ends here too.
            log.warning("redis unavailable", extra={"path": list(error.path or []), "error": repr(original)})
            return GraphQLError(
                "The event bus is unavailable for a moment: try again (resume a stream from its cursor).",
                nodes=error.nodes,
                path=error.path,
                extensions={"code": TopLevelCode.UNAVAILABLE.value},
            )
        log.error(
            "unexpected error in resolver",
            exc_info=(type(original), original, original.__traceback__) if original else None,
            extra={"path": list(error.path or [])},
        )
        masked = super().anonymise_error(error)
        masked.message = translate(masked.message, code=TopLevelCode.INTERNAL_SERVER_ERROR.value)
        masked.extensions = {"code": TopLevelCode.INTERNAL_SERVER_ERROR.value}
        return masked


def _as_bad_input(error: GraphQLError) -> GraphQLError:
    if (error.extensions or {}).get("code"):
        return error
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        extensions={"code": TopLevelCode.BAD_USER_INPUT.value},
    )


class RefuseInvalidText(SchemaExtension):
    """Variables holding a lone UTF-16 surrogate (`"\\ud800"` in the JSON) or a NUL are refused before
    parsing: no Unicode text can hold the first, PostgreSQL no NUL, so storing or comparing them could only
    fail later, as a server error (kernel/wellformed.py)."""

    def on_parse(self) -> Iterator[None]:
        variables = self.execution_context.variables or {}
        for name, value in variables.items():
            path = invalid_text_path(value)
            if path is not None:
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
                raise bad_user_input(
                    f"Variable ${name}{where} holds {INVALID_TEXT}.",
                    argument=name,
                )
        yield
