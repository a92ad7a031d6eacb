"""Each mutation declares the error codes it can return (`@error_codes`): the schema names them, they are
the codes its code can reach, and a result with any other code fails under the tests' strict setting."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated

import pytest
import strawberry
from strawberry.types.field import StrawberryField

from subgraphs.kernel.errors import ERROR_TYPES, ErrorCode, NotFoundError, ValidationError
from subgraphs.kernel.web.mutations import declared_codes, error_codes, errors_line
from tests.unit.mutation_codes import codes_of_mutations

SUBGRAPHS = ("users", "servers", "channels", "messages", "friends", "webhooks")


def _mutations() -> Iterator[tuple[str, StrawberryField]]:
    for subgraph in SUBGRAPHS:
        schema = importlib.import_module(f"subgraphs.{subgraph}.schema").schema
        mutation = schema.get_type_by_name("Mutation")
        for field in mutation.fields:
            yield subgraph, field


def _key(field: StrawberryField) -> str:
    """The resolver as tests/unit/mutation_codes.py names it: `module:Class.method`."""
    assert field.base_resolver is not None
    wrapped = field.base_resolver.wrapped_func
    return f"{wrapped.__module__}:{wrapped.__qualname__}"


MUTATIONS = list(_mutations())


def test_every_mutation_declares_its_codes() -> None:
    assert len(MUTATIONS) > 80
    missing = [
        f"{subgraph}: {field.python_name}" for subgraph, field in MUTATIONS if declared_codes(field) is None
    ]
    assert not missing, "mutations without @error_codes(…):\n" + "\n".join(missing)


def test_the_declared_codes_are_those_the_code_can_return() -> None:
    reachable = codes_of_mutations()
    wrong = []
    for _subgraph, field in MUTATIONS:
        declared = {code.value for code in declared_codes(field) or ()}
        found = reachable[_key(field)]
        if declared != found:
            wrong.append(
                f"{field.python_name}: undeclared {sorted(found - declared)}, never returned "
                f"{sorted(declared - found)}"
            )
    assert not wrong, "\n".join(wrong)


def test_the_schema_names_each_mutations_codes() -> None:
    for subgraph, field in MUTATIONS:
        codes = declared_codes(field)
        assert codes is not None
        if codes:
            schema = importlib.import_module(f"subgraphs.{subgraph}.schema").schema
            name = schema.config.name_converter.get_graphql_name(field)
            description = schema._schema.mutation_type.fields[name].description or ""
            assert description.endswith(errors_line(codes)), (field.python_name, description)


GoResult = Annotated[NotFoundError | ValidationError, strawberry.union("GoResult")]


@strawberry.type
class _Query:
    ok: bool = True


@strawberry.type
class _Mutation:
    @error_codes(ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="Returns the error it is told to.")
    async def go(self, code: str) -> GoResult:
        if code == "NOT_FOUND":
            return NotFoundError(code=ErrorCode.NOT_FOUND, message="No such thing.", field=None)
        return ValidationError(code=ErrorCode(code), message="Too long.", field=None)


SCHEMA = strawberry.federation.Schema(query=_Query, mutation=_Mutation, types=list(ERROR_TYPES))
GO = "mutation($code: String!) { go(code: $code) { ... on UserError { code } } }"


def _context(strict: bool) -> SimpleNamespace:
    return SimpleNamespace(runtime=SimpleNamespace(settings=SimpleNamespace(strict_errors=strict)))


async def test_an_undeclared_code_fails_under_the_strict_setting() -> None:
    declared = await SCHEMA.execute(GO, {"code": "NOT_FOUND"}, context_value=_context(strict=True))
    assert declared.errors is None and declared.data == {"go": {"code": "NOT_FOUND"}}
    undeclared = await SCHEMA.execute(GO, {"code": "TOO_LONG"}, context_value=_context(strict=True))
    assert undeclared.errors and "go returned TOO_LONG, which it does not declare (NOT_FOUND)" in str(
        undeclared.errors[0]
    )


async def test_an_undeclared_code_is_logged_and_answered_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="beep.errors"):
        result = await SCHEMA.execute(GO, {"code": "TOO_LONG"}, context_value=_context(strict=False))
    assert result.errors is None and result.data == {"go": {"code": "TOO_LONG"}}
    assert [r.message for r in caplog.records] == ["undeclared error code"]


def test_the_declaration_goes_above_the_mutation_and_reads_in_its_description() -> None:
    with pytest.raises(TypeError):
        error_codes(ErrorCode.NOT_FOUND)(lambda: None)
    field = SCHEMA.get_type_by_name("Mutation").fields[0]  # type: ignore[union-attr]
    assert field.description == "Returns the error it is told to.\nErrors: NOT_FOUND."
