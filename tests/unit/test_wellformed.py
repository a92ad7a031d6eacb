"""Malformed input (lone surrogates and NULs, JSON nested too deep, values a scalar refuses) is the sender's
fault: refused as such before any rule or database sees it, never a server error."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import strawberry

from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.kernel.wellformed import MalformedJSON, depth_of, invalid_text_path, is_unstorable, loads


def test_unstorable_text_is_found_anywhere_in_a_value() -> None:
    assert is_unstorable("a\ud800b") and is_unstorable("\udfff") and is_unstorable("a\x00b")
    assert not is_unstorable("emoji 😀, tab\t and newline\n")
    assert invalid_text_path({"i": {"tags": ["ok", "x\udc00"]}}) == ["i", "tags", 1]
    assert invalid_text_path({"k\ud800": 1}) == []
    assert invalid_text_path({"i": {"content": "fine", "n": 3, "none": None}}) is None
    assert invalid_text_path(json.loads('"\\ud83d\\ude00"')) is None  # a pair is one character


def test_depth_is_measured_without_recursion() -> None:
    assert depth_of("x") == 0
    assert depth_of([]) == 1
    assert depth_of({"a": [1, {"b": []}]}) == 4
    nested: list[object] = []
    for _ in range(50_000):
        nested = [nested]
    assert depth_of(nested) == 50_001


def test_loads_refuses_deep_json_and_lone_surrogates() -> None:
    assert loads('{"a": [1, "\\ud83d\\ude00"]}') == {"a": [1, "😀"]}
    with pytest.raises(MalformedJSON, match="nested"):
        loads("[" * 100_000 + "]" * 100_000)  # the decoder's own RecursionError, turned into ours
    with pytest.raises(MalformedJSON, match="nested"):
        loads("[" * 65 + "]" * 65)
    for text in ('"\\ud800"', '"a\\u0000"'):
        with pytest.raises(MalformedJSON, match="NUL character or a lone surrogate"):
            loads(f'{{"content": {text}}}')
    assert loads('{"content": "\\ud800"}', text=False) == {"content": "\ud800"}
    with pytest.raises(json.JSONDecodeError):
        loads("{not json")


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, text: str | None = None, when: datetime | None = None, count: int | None = None) -> str:
        return "ok"


SCHEMA = strawberry.Schema(query=Query, extensions=schema_extensions())
ECHO = "query($t: String, $w: DateTime, $c: Int) { echo(text: $t, when: $w, count: $c) }"


@pytest.mark.parametrize(
    "variables",
    [
        {"t": "a\ud800"},
        {"t": "a\x00"},
        {"w": "not-a-date"},
        {"w": "99999-99-99"},
        {"w": [[["2026-01-01"]]]},
        {"c": 2**40},
    ],
)
async def test_bad_variables_are_bad_user_input_not_server_errors(variables: dict[str, object]) -> None:
    result = await SCHEMA.execute(ECHO, variable_values=variables)
    assert result.data is None
    assert [e.extensions for e in result.errors or []] == [
        {"code": "BAD_USER_INPUT", **({"argument": "t"} if "t" in variables else {})}
    ]


@pytest.mark.parametrize(
    "literal", ['when: "not-a-date"', 'when: "99999-99-99"', "when: 3", "count: 1099511627776"]
)
async def test_a_literal_a_scalar_refuses_is_bad_user_input(literal: str) -> None:
    # The gateway's stitching runtime sends literals as variables (the test above); Hive Router's sends
    # them as written.
    result = await SCHEMA.execute(f"{{ echo({literal}) }}")
    assert result.data is None
    assert [e.extensions for e in result.errors or []] == [{"code": "BAD_USER_INPUT"}]


async def test_other_validation_errors_are_not_bad_user_input() -> None:
    result = await SCHEMA.execute("query($w: DateTime) { echo(nope: 1, text: $w) }", variable_values={})
    assert result.errors and all(not (e.extensions or {}).get("code") for e in result.errors)


async def test_good_variables_still_run() -> None:
    result = await SCHEMA.execute(ECHO, variable_values={"t": "😀", "w": "2026-12-04T10:00:00Z", "c": 3})
    assert result.errors is None and result.data == {"echo": "ok"}
