"""Browsers and media types: CORS answers only the allow-list (by default the router's own origin), on
preflights too, and subgraphs send no CORS headers; every GraphQL endpoint speaks
`application/graphql-response+json` when asked (a request error is then a 400 without `data`), and passes
the graphql-http audits (GraphQL over HTTP conformance)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from beep.router import ROUTER_DIR
from tests.harness.stack import Stack

GRAPHQL_RESPONSE = "application/graphql-response+json"
FOREIGN = "https://evil.example"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def post(url: str, origin: str | None = None, **headers: str) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    if origin:
        sent["origin"] = origin
    return httpx.post(url, json={"query": "{ __typename }"}, headers=sent, timeout=30)


def preflight(url: str, origin: str, **extra: str) -> httpx.Response:
    headers = {
        **extra,
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    return httpx.options(url, headers=headers, timeout=30)


def test_cors_answers_the_routers_own_origin_and_no_other(stack: Stack) -> None:
    own = origin_of(stack.router_url)
    # A page on another site gets no CORS header: the browser keeps the answer from it
    foreign = post(stack.router_url, FOREIGN)
    assert foreign.status_code == 200 and foreign.json()["data"] == {"__typename": "Query"}
    assert not any(h.startswith("access-control-") for h in foreign.headers), foreign.headers
    assert "origin" in foreign.headers.get("vary", "").lower()
    for origin in ("null", own.replace("127.0.0.1", "localhost"), own + ".evil.example"):
        assert "access-control-allow-origin" not in post(stack.router_url, origin).headers, origin
    refused = preflight(stack.router_url, FOREIGN)
    assert refused.status_code < 500
    assert not any(h.startswith("access-control-") for h in refused.headers), refused.headers

    # The router's own origin (its public URL's; the Laboratory it serves) is answered, with credentials
    same = post(stack.router_url, own)
    assert same.headers["access-control-allow-origin"] == own
    assert same.headers["access-control-allow-credentials"] == "true"
    allowed = preflight(stack.router_url, own)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == own
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()


@pytest.fixture
def listed_router(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second router of the stack with an allow-list of two origins."""
    monkeypatch.setenv("BEEP_ROUTER_CORS_ORIGINS", "https://app.example, http://localhost:5173")
    issuers = next(iter(stack.router_envs.values()))  # the first router's ("router", "router-a")
    url = stack.start_router(
        "router-cors", stack.subgraph_urls, issuers["BEEP_JWKS_URL"], issuers["BEEP_JWT_ISSUER"]
    )
    yield url
    stack.kill("router-cors")


def test_cors_answers_the_listed_origins(listed_router: str) -> None:
    for origin in ("https://app.example", "http://localhost:5173"):
        assert post(listed_router, origin).headers["access-control-allow-origin"] == origin
        assert preflight(listed_router, origin).headers["access-control-allow-origin"] == origin
    for origin in (FOREIGN, "https://app.example.evil", "http://localhost:5174", "null"):
        assert "access-control-allow-origin" not in post(listed_router, origin).headers, origin
        assert "access-control-allow-origin" not in preflight(listed_router, origin).headers, origin


def test_subgraphs_send_no_cors_headers(stack: Stack) -> None:
    internal = stack.internal_headers  # past the subgraphs' internal-caller guard, as the router is
    for name, url in stack.subgraph_urls.items():
        own = origin_of(stack.router_url)
        for response in (
            post(url, FOREIGN, **internal),
            preflight(url, FOREIGN, **internal),
            post(url, own, **internal),
        ):
            assert "access-control-allow-origin" not in response.headers, (name, response.headers)


def endpoints(stack: Stack) -> dict[str, str]:
    return {"router": stack.router_url, **stack.subgraph_urls}


def caller_headers(stack: Stack, name: str) -> dict[str, str]:
    """A subgraph serves only Beep's own processes: the test calls it with their credential."""
    return {} if name == "router" else stack.internal_headers


def test_every_graphql_endpoint_answers_graphql_response_json(stack: Stack) -> None:
    for name, url in endpoints(stack).items():
        wanted = {"accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9", **caller_headers(stack, name)}
        ok = post(url, **wanted)
        assert ok.status_code == 200 and ok.json() == {"data": {"__typename": "Query"}}, (name, ok.text)
        assert ok.headers["content-type"].startswith(GRAPHQL_RESPONSE), (name, ok.headers)

        # Request errors (no execution) are 400s with errors and no data: validation, parse, variables
        for body in (
            {"query": "{ noSuchField }"},
            {"query": "{"},
            {"query": "query($n: Int!) { __typename }", "variables": {"n": "x"}},
        ):
            bad = httpx.post(url, json=body, headers=wanted, timeout=30)
            assert bad.status_code == 400, (name, body, bad.status_code, bad.text)
            assert bad.headers["content-type"].startswith(GRAPHQL_RESPONSE), (name, bad.headers)
            assert "data" not in bad.json() and bad.json()["errors"], (name, bad.text)
        unparsable = httpx.post(
            url, content=b"{not json", headers={**wanted, "content-type": "application/json"}
        )
        assert unparsable.status_code == 400 and unparsable.json()["errors"], (name, unparsable.text)

        # application/json is unchanged: 200 (errors in the body) and its own media type
        plain = {"accept": "application/json", **caller_headers(stack, name)}
        legacy = httpx.post(url, json={"query": "{ noSuchField }"}, headers=plain)
        assert legacy.status_code == 200 and legacy.json()["errors"], (name, legacy.text)
        assert legacy.headers["content-type"].startswith("application/json"), (name, legacy.headers)


def test_every_graphql_endpoint_passes_the_graphql_http_audits(stack: Stack) -> None:
    urls = list(endpoints(stack).values())
    done = subprocess.run(
        ["node", str(ROUTER_DIR / "audit.mjs"), *urls],
        env={**os.environ, "BEEP_AUDIT_HEADERS": json.dumps(stack.internal_headers)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["url"] for r in reports] == urls
    for report in reports:
        assert len(report["results"]) >= 60, report
        failed = [r for r in report["results"] if r["status"] != "ok"]
        assert failed == [], (report["url"], failed)
