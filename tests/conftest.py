"""Shared fixtures: the running stacks (started once per test session, stopped at the end)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.keycloak import KeycloakServer
from tests.harness.solr import solr_node
from tests.harness.stack import Stack, start_embedded, start_full
from tests.harness.traces import TraceReceiver

os.environ.setdefault("BEEP_LOG_FORMAT", "json")


@pytest.fixture(scope="session")
def embedded_stack() -> Iterator[Stack]:
    stack = start_embedded()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def trace_receiver() -> Iterator[TraceReceiver]:
    receiver = TraceReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def full_stack(trace_receiver: TraceReceiver) -> Iterator[Stack]:
    """Traces on, as deployed, exported to the tests' receiver; sampled only where a test sends its own
    sampled `traceparent` (ratio 0), so a message's trace is asserted without a stack of its own
    (tests/integration/test_traces.py)."""
    stack = start_full(extra_env=trace_receiver.settings())
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def solr_stack() -> Iterator[Stack]:
    """The embedded stack searching with Solr: a real Solr 9 node, one core per channel."""
    with solr_node() as url:
        stack = start_embedded({"BEEP_SEARCH_BACKEND": "solr", "BEEP_SEARCH_SOLR_URL": url})
        yield stack
        stack.stop()


@pytest.fixture(scope="session")
def keycloak() -> Iterator[KeycloakServer]:
    server = KeycloakServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keycloak_stack(keycloak: KeycloakServer) -> Iterator[Stack]:
    """The embedded stack with Keycloak as its identity provider; the router trusts both issuers."""
    stack = start_embedded(keycloak.beep_env(), [(keycloak.issuer, keycloak.jwks_url)])
    yield stack
    stack.stop()


@pytest.fixture(scope="session", params=["builtin", "keycloak"])
def identity(request: pytest.FixtureRequest) -> Stack:
    """The identity contract runs against both providers: the built-in issuer and Keycloak."""
    return request.getfixturevalue("embedded_stack" if request.param == "builtin" else "keycloak_stack")


@pytest.fixture(scope="session", params=["embedded", "full"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The same behaviour suite runs against both modes."""
    return request.getfixturevalue(f"{request.param}_stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "solr":
            item.add_marker(pytest.mark.solr)  # starts a Solr node: not in the fast unit loop
        elif "/tests/unit/" in path:
            item.add_marker(pytest.mark.unit)
        if callspec is not None and "stack" in callspec.params:
            item.add_marker(getattr(pytest.mark, callspec.params["stack"]))
        uses_keycloak = {"keycloak", "keycloak_stack"} & set(getattr(item, "fixturenames", ()))
        if uses_keycloak or (callspec is not None and callspec.params.get("identity") == "keycloak"):
            item.add_marker(pytest.mark.keycloak)
