"""The router's cost estimate (router/cost.ts, run through router/cost-estimate.mjs on the committed
supergraph): what it multiplies, that the exponential shape of issue 15 is far above the default ceiling,
and that no operation Beep's own clients send (the tests' and benchmarks') comes near it."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse

ROOT = Path(__file__).resolve().parents[2]
ESTIMATE = ROOT / "router" / "cost-estimate.mjs"
OPERATION = re.compile(r"\s*(\{\s*[A-Za-z_]|query\b|mutation\b|subscription\b)")  # not "{}"


def estimate(*operations: dict[str, Any]) -> list[dict[str, Any]]:
    lines = "".join(json.dumps(op) + "\n" for op in operations)
    done = subprocess.run(
        ["node", str(ESTIMATE)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    [found] = estimate({"query": query, **({"variables": variables} if variables is not None else {})})
    assert "cost" in found, found
    return int(found["cost"])


def default_max() -> int:
    [found] = estimate({"query": "{ __typename }"})
    return int(found["defaultMax"])


def nested(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"channels {{ server {{ {inner} }} }}"
    return f'{{ channel(id: "1") {{ server {{ {inner} }} }} }}'


def test_lists_multiply_what_is_selected_under_them() -> None:
    # A server's channels (at most 500) each cost 1; scalars cost nothing; so does __typename
    assert cost('{ server(id: "1") { id name __typename channels { id name } } }') == 1 + 500
    # Under each channel, its server (an object: 1 each)
    assert cost('{ server(id: "1") { channels { server { id } } } }') == 1 + 500 + 500
    # A connection's `first` sizes its edges (the connection itself counts once): literal, variable, default
    page = "query($n: Int) { channel(id: 1) { members(first: $n) { edges { node { user { id } } } } } }"
    assert cost(page, {"n": 10}) == 1 + 1 + 3 * 10
    assert cost(page, {"n": None}) == cost(page, {}) == 1 + 1 + 3 * 100  # null: the default page
    # Variables are priced as execution coerces them; ones that do not coerce are not priced (execution
    # refuses them itself: an Int past 32 bits is a 400 BAD_USER_INPUT, not a cost)
    [uncoerced] = estimate({"query": page, "variables": {"n": 2**40}})
    assert "do not coerce" in uncoerced["error"]
    literal = page.replace("query($n: Int) ", "")
    assert cost(literal.replace("(first: $n)", "(first: 7)")) == 1 + 1 + 3 * 7
    assert cost(literal.replace("(first: $n)", "")) == 1 + 1 + 3 * 100  # the argument's default
    # A page argument left null is priced at the largest page (assumedSize)
    assert cost('{ searchUsers(prefix: "a") { edges { node { id } } } }') == 1 + 2 * 100
    # A plain list sized by its `first` (no sizedFields)
    assert (
        cost("query($f: Int) { auditLog(serverId: 1, first: $f) { id actor { id } } }", {"f": 20}) == 20 + 20
    )
    # Fragments count as written inline, aliases each time; a mutation adds 10
    fragment = 'query { a: server(id: "1") { ...F } b: server(id: "2") { ...F } }'
    fragment += " fragment F on Server { roles { id } }"
    assert cost(fragment) == 2 * (1 + 250)
    assert cost('mutation { leaveServer(serverId: "1") { __typename } }') == 10 + 1


def test_the_exponential_shape_is_refused_and_client_pages_are_not() -> None:
    ceiling = default_max()
    # issue 15: channel { server { channels { server { channels ... } } } } grows as channels^depth
    assert cost(nested(1)) < ceiling  # one level of it is an ordinary channel list
    assert cost(nested(2)) > ceiling
    assert cost(nested(4)) > 1000 * ceiling
    # The richest page a client shows: 100 messages with everything on them
    rich = """query($c: ID!) { messages(channelId: $c, first: 100) { edges { cursor node { id content html
      author { id username avatarUrl } reactions { emoji count me } mentions { id username }
      mentionedChannels { id name } attachments { filename size url } embeds { title fields { name value } }
      linkPreviews { url title } replyTo { id content author { id username } } channel { id name }
      webhook { id name } } } pageInfo { hasNextPage } } }"""
    assert cost(rich, {"c": "1"}) < ceiling


def operations_in(path: Path) -> set[str]:
    """The GraphQL operations a module sends: its string literals and (after import) its module-level
    strings, the f-strings that build operations from shared fragments included."""
    texts = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    texts |= {v for v in vars(importlib.import_module(module)).values() if isinstance(v, str)}
    found = set()
    for text in texts:
        if not isinstance(text, str) or not OPERATION.match(text):
            continue
        try:
            document = parse(text)
        except GraphQLError:
            continue
        if (
            any(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            and "_entities" not in text
        ):
            found.add(text)  # (_entities: what the tests send a subgraph directly, not the router)
    return found


def test_no_operation_beep_clients_send_comes_near_the_ceiling() -> None:
    sources = {
        "integration": sorted((ROOT / "tests" / "integration").glob("*.py")),
        "security": sorted((ROOT / "tests" / "security").glob("*.py")),  # hostile on purpose: some invalid
        "bench": sorted((ROOT / "bench").glob("*.py")),
    }
    found = {kind: set().union(*(operations_in(f) for f in files)) for kind, files in sources.items()}
    operations = sorted(set().union(*found.values()))
    assert len(operations) > 200  # the scan finds them
    ceiling = default_max()
    priced = dict(zip(operations, estimate(*({"query": q} for q in operations)), strict=True))
    # Every one a client sends is valid against the supergraph (else the scan or the schema drifted) ...
    invalid = {q: r["error"] for q, r in priced.items() if "cost" not in r and q not in found["security"]}
    assert invalid == {}
    # ... and priced at most a fifth of the ceiling (the security tests' costly ones are meant to pass it)
    over = {q: r["cost"] for q, r in priced.items() if r.get("cost", 0) > ceiling // 5}
    assert set(over) <= found["security"] - found["integration"] - found["bench"], over
    assert len(over) >= 2  # (those: tests/security/test_cost_limit.py)


def test_the_default_ceiling_is_the_documented_one() -> None:
    readme = (ROOT / "router" / "README.md").read_text()
    assert f"| `BEEP_ROUTER_MAX_COST` | `{default_max()}` |" in readme


def test_a_clients_sidebar_runs_and_the_exponential_shape_does_not() -> None:
    """Every client loads its servers with their channels first (200 servers x 500 channels at most):
    the default ceiling lets that through and still refuses one more level of the issue's shape."""
    sidebar = cost("{ myServers { id name channels { id name kind position } } }")
    assert sidebar == 100_200 and sidebar <= default_max()
    assert cost('{ channel(id: "1") { server { channels { server { channels { id } } } } } }') > default_max()
