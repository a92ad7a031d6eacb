"""A subgraph's Strawberry schema, built the one way every subgraph builds it: Federation 2.9, the
shared error types, the schema extensions (kernel/web/extensions.py), the budgeted execution
(kernel/web/limits.py) — and an `ErrorCode` of its own domain.

Every subgraph shares the error types (`ValidationError`, `NotFoundError`, …: `UserError` with a `code`),
so every subgraph's SDL used to list all of the API's codes. Here each subgraph's `ErrorCode` keeps only
the codes its own mutations declare (`@error_codes`, kernel/web/mutations.py): the subgraph's contract
names its domain's codes, and a code outside them cannot be serialised by it (an error, never a silent
wrong code). The supergraph's `ErrorCode` is their union: an enum used only in output composes that way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNamedType, GraphQLObjectType, GraphQLUnionType
from strawberry.federation import Schema
from strawberry.types.base import StrawberryObjectDefinition

from subgraphs.kernel.errors import ERROR_TYPES, ErrorCode
from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.kernel.web.limits import BudgetedExecution
from subgraphs.kernel.web.mutations import declared_codes

ERROR_CODE_TYPE = "ErrorCode"
USER_ERROR_INTERFACE = "UserError"


def subgraph_schema(
    *, query: type, mutation: type, subscription: type | None = None, types: Iterable[type] = ()
) -> Schema:
    schema = Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=[*types, *ERROR_TYPES],
        extensions=schema_extensions(),
        execution_context_class=BudgetedExecution,
        federation_version="2.9",
    )
    narrow_error_codes(schema)
    return schema


def domain_codes(schema: Schema) -> frozenset[ErrorCode]:
    """The codes the schema's mutations declare."""
    mutation = schema.get_type_by_name("Mutation")
    codes: set[ErrorCode] = set()
    if isinstance(mutation, StrawberryObjectDefinition):
        for field in mutation.fields:
            codes |= declared_codes(field) or frozenset()
    return frozenset(codes)


def _returns_user_errors(type_: Any) -> bool:
    while hasattr(type_, "of_type"):
        type_ = type_.of_type
    members: list[GraphQLNamedType] = list(type_.types) if isinstance(type_, GraphQLUnionType) else [type_]
    return any(
        isinstance(m, GraphQLObjectType) and any(i.name == USER_ERROR_INTERFACE for i in m.interfaces)
        for m in members
    )


def narrow_error_codes(schema: Schema) -> None:
    """Keep in the schema's `ErrorCode` only its mutations' declared codes. Only mutations return user
    errors (queries and subscriptions raise top-level errors): a query or subscription field that could
    return one would carry codes nobody declared, so it is refused here, when the schema is built."""
    graphql_schema = schema._schema
    for root in (graphql_schema.query_type, graphql_schema.subscription_type):
        if root is None:
            continue
        for name, field in root.fields.items():
            if _returns_user_errors(field.type):
                raise TypeError(f"{root.name}.{name} returns a UserError: only mutations declare error codes")
    enum_type = graphql_schema.type_map.get(ERROR_CODE_TYPE)
    codes = {code.value for code in domain_codes(schema)}
    if not isinstance(enum_type, GraphQLEnumType) or not codes:
        return
    enum_type.values = {name: value for name, value in enum_type.values.items() if value.value in codes}
