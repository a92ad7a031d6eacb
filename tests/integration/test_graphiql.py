"""The router's built-in Laboratory (GraphiQL), as a developer uses it: it renders and runs queries offline.

The router serves Hive Gateway's Laboratory on a browser GET of /graphql. Beep's dev setup is loopback-only
and must work without internet access, so the page may load nothing from anywhere but the router itself.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, Request, Response, Route, expect, sync_playwright

from tests.harness.stack import Stack
from tests.integration.flows import CREATE_CHANNEL, CREATE_SERVER, MESSAGE_EVENTS, SEND_MESSAGE, SIGN_UP

pytestmark = pytest.mark.embedded

CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium; Playwright's own browser downloads are not used
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 20_000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

QUERY = 'query { server(id: "4242") { id } }'
EXPECTED_RESULT = {"data": {"server": None}}

# @monaco-editor/loader's default config points at this CDN; the loader only uses it (by appending
# <script src=".../loader.js">) when no monaco instance was handed to it. The Laboratory bundle hands it
# the bundled instance (`loader.config({monaco})`), so the string is dead. The static test checks that
# wiring; the browser test proves the URL is not fetched, no <script src> is added, and the editors work
# while every non-loopback request would be aborted.
MONACO_CDN_FALLBACK = re.compile(r"https://cdn\.jsdelivr\.net/npm/monaco-editor@[\w.-]+/min/vs")

# Hosts that occur in the page's inline script only as text, never as something the page loads: links in
# comments, licence headers, JSDoc and error/diagnostic messages of the bundled libraries (React, Radix,
# graphql-js, Monaco and the TypeScript lib it embeds, Prettier, core-js, ...), XML namespaces and
# JSON-schema `$id`s (compared as strings; Monaco's JSON worker bundles those schemas), examples in docs, and
# `https://dummyhostname.com`, a base for parsing relative URLs whose host is thrown away. The browser test
# backs this up: nothing off-host is requested. A new host here after a Hive Gateway upgrade fails the test
# with its context, for a human to classify.
REFERENCE_ONLY_HOSTS = frozenset(
    {
        "24ways.org",
        "aka.ms",
        "bugs.chromium.org",
        "cldr.unicode.org",
        "code.visualstudio.com",
        "commonmark.org",
        "developer.mozilla.org",
        "dummyhostname.com",
        "en.wikipedia.org",
        "example.com",
        "github.com",
        "json-schema.org",
        "lists.w3.org",
        "microsoft.com",
        "npms.io",
        "prettier.io",
        "radix-ui.com",
        "reactjs.org",
        "spec.graphql.org",
        "tailwindcss.com",
        "tc39.es",
        "tools.ietf.org",
        "unicode.org",
        "unstats.un.org",
        "url.spec.whatwg.org",
        "www.apache.org",
        "www.currency-iso.org",
        "www.example.com",
        "www.iso.org",
        "www.rapidtables.com",
        "www.w3.org",
        "yarnpkg.com",
    }
)

# What follows a `//`: a literal host (and the rest of the URL). Templates such as `http://[${v}]` (zod's IPv6
# check, parsed but never fetched) have no literal host and are not matched.
HOST_AND_REST = re.compile(r"(?i)(\[[0-9a-f:.]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*)[^\s\"'`<>()\\]*")
SCHEME_BEFORE = re.compile(r"(?i)(?:https?|wss?|ftp):$")
# A scheme-relative `//host/...` counts where something could load it: CSS url()/@import, or a string start.
LOADABLE_BEFORE = re.compile(r"""(?i)(?:url\(\s*|@import\s+|["'`=])\s*$""")


def is_loopback(url: str) -> bool:
    if url.startswith("data:"):
        return True
    return urlsplit(url.removeprefix("blob:")).hostname in LOOPBACK_HOSTS


# --- the browser test ---------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Everything the page asked the network for, as seen by the browser context."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, url, post data
    aborted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def off_host(self) -> list[str]:
        urls = [url for _, url, _ in self.requests] + self.websockets
        return [url for url in urls if not is_loopback(url)]

    def assert_stayed_on_host(self) -> None:
        assert self.off_host() == [], f"the page contacted non-loopback hosts: {self.off_host()}"
        assert self.aborted == [], f"requests to non-loopback hosts were aborted: {self.aborted}"
        assert self.failed == [], f"requests failed: {self.failed}"
        assert self.page_errors == [], f"uncaught errors in the page: {self.page_errors}"


@contextmanager
def laboratory_browser(screenshot: Path) -> Iterator[tuple[Page, Traffic]]:
    """A fresh headless Chromium profile, with every request recorded and any non-loopback one aborted.

    Chromium is closed however the block ends; if it fails, a screenshot is saved and named in the error.
    """
    traffic = Traffic()

    def only_loopback(route: Route) -> None:
        if is_loopback(route.request.url):
            route.continue_()
        else:
            traffic.aborted.append(route.request.url)
            route.abort("blockedbyclient")

    def record(request: Request) -> None:
        traffic.requests.append((request.method, request.url, request.post_data or ""))

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        except PlaywrightError as error:
            pytest.fail(f"Chromium ({CHROMIUM}) did not start: {error.message}", pytrace=False)
        try:
            # A new context is a fresh profile: the Laboratory keeps tabs and settings in localStorage.
            context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
            context.route("**/*", only_loopback)  # also sees the requests of the Monaco web workers
            context.on("request", record)
            context.on("requestfailed", lambda r: traffic.failed.append(f"{r.url}: {r.failure}"))
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.on("websocket", lambda ws: traffic.websockets.append(ws.url))  # route() does not see these
            page.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
            try:
                yield page, traffic
            except BaseException as failure:
                try:
                    page.screenshot(path=screenshot, timeout=5_000)
                    failure.add_note(f"screenshot of the Laboratory: {screenshot}")
                except PlaywrightError as error:
                    failure.add_note(f"no screenshot: {error.message}")
                raise
        finally:
            browser.close()


@pytest.mark.browser
def test_laboratory_renders_offline_and_runs_a_query(embedded_stack: Stack, tmp_path: Path) -> None:
    with laboratory_browser(tmp_path / "laboratory.png") as (page, traffic):
        developer_runs_a_query_in_the_laboratory(embedded_stack.router_url, page, traffic)


def developer_runs_a_query_in_the_laboratory(router_url: str, page: Page, traffic: Traffic) -> None:
    # given: a developer opens the router's URL in a browser
    page.goto(router_url, wait_until="load")

    # then: the Laboratory renders (inside an open shadow root, which Playwright's locators pierce)
    page.get_by_role("button", name="Add operation").first.click()
    operation_editor = page.locator('.monaco-editor[data-uri^="file:///operation_"]')
    expect(operation_editor).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(operation_editor.locator("textarea")).to_be_editable()
    # the schema builder lists Beep's root Query fields: introspection went through the router
    query_fields = page.get_by_role("tabpanel", name="Query")
    expect(query_fields.get_by_role("button", name=re.compile(r"^server\s*:\s*Server$"))).to_be_visible()
    expect(query_fields.get_by_role("button", name=re.compile(r"^me\s*:\s*User$"))).to_be_visible()

    # and: it got there on its own — the page and its introspection query, nothing from elsewhere
    requested = [(method, urlsplit(url).path, body) for method, url, body in traffic.requests]
    assert ("GET", "/graphql", "") in requested, traffic.requests
    assert any(method == "POST" and "IntrospectionQuery" in body for method, _, body in requested), requested
    traffic.assert_stayed_on_host()
    # the Monaco loader's CDN fallback was not taken: it would have appended <script src=".../loader.js">
    assert not [url for _, url, _ in traffic.requests if MONACO_CDN_FALLBACK.match(url)]
    assert page.evaluate("document.querySelectorAll('script[src]').length") == 0
    assert page.evaluate("typeof window.monaco?.editor?.create") == "function"

    # when: they type a query into the operation editor and press Run
    operation_editor.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text(QUERY)  # as a paste: typing would fight Monaco's bracket auto-closing
    expect(operation_editor.locator(".view-lines")).to_have_text(QUERY)

    def is_our_query(response: Response) -> bool:
        return response.request.method == "POST" and "4242" in (response.request.post_data or "")

    with page.expect_response(is_our_query) as ran:
        page.get_by_role("button", name="Run", exact=True).click()

    # then: the query went to the router, and the answer is shown in the response pane
    response = ran.value
    assert urlsplit(response.url).path == "/graphql" and is_loopback(response.url)
    sent = json.loads(response.request.post_data or "{}")
    assert 'server(id:"4242"){id}' in re.sub(r"\s+", "", sent["query"])
    assert response.status == 200
    assert response.json() == EXPECTED_RESULT
    shown = page.get_by_role("tabpanel", name="Response").locator(".monaco-editor .view-lines")
    expect(shown).to_contain_text('"server": null')
    assert json.loads(shown.inner_text().replace("\xa0", " ")) == EXPECTED_RESULT  # Monaco renders nbsp

    # and: still nothing but the router was contacted, and nothing was blocked
    traffic.assert_stayed_on_host()


# --- the static check of the page ---------------------------------------------------------------------


class _LaboratoryPage(HTMLParser):
    """Splits the page into markup attributes, inline scripts and inline styles (no external resources)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self._open = tag

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts.append(data)
        elif self._open == "style":
            self.styles.append(data)


def _off_host_urls(text: str) -> list[tuple[str, str, str]]:
    """(url, host, context) of every non-loopback URL, also JSON- or percent-escaped ones.

    Scans from each `//` (a literal search, fast on the 21 MB page) instead of with one big regex.
    """
    found = []
    for source in (text, unquote(text.replace("\\/", "/"))):
        for separator in re.finditer("//", source):
            start, end = separator.span()
            rest = HOST_AND_REST.match(source, end)
            before = source[max(0, start - 12) : start]
            if rest is None:
                continue
            if scheme := SCHEME_BEFORE.search(before):
                url = source[start - len(scheme.group()) : rest.end()]
            elif LOADABLE_BEFORE.search(before) and "." in rest.group(1):
                url = source[start : rest.end()]
            else:
                continue
            host = rest.group(1).strip("[]").lower()
            if host not in LOOPBACK_HOSTS:
                found.append((url, host, source[max(0, start - 80) : rest.end() + 40]))
    return found


def test_laboratory_page_loads_nothing_from_other_hosts(embedded_stack: Stack) -> None:
    # given: the page a browser gets from the router
    response = httpx.get(embedded_stack.router_url, headers={"Accept": "text/html"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _LaboratoryPage()
    page.feed(response.text)
    page.close()
    assert "script" in page.tags and page.scripts, "expected the Laboratory to be inlined into the page"

    # then: the markup loads nothing from elsewhere — no <script src>, stylesheet, font, image or frame
    assert [
        (tag, name, value[:120])
        for tag, name, value in page.attributes
        if not value.startswith("data:") and _off_host_urls(value)
    ] == []
    loaded_from = [
        (tag, urljoin(embedded_stack.router_url, value))
        for tag, name, value in page.attributes
        if name in ("src", "href", "srcset", "poster", "data", "action", "formaction")
    ]
    assert [(tag, url) for tag, url in loaded_from if not is_loopback(url)] == []
    # and: neither does the inline CSS (no url() or @import to another host)
    assert [url for style in page.styles for url in _off_host_urls(style)] == []

    # and: the inline script mentions other hosts only as text (see REFERENCE_ONLY_HOSTS) ...
    script = "".join(page.scripts)
    mentioned = _off_host_urls(script)
    unexplained = [
        (url, context)
        for url, host, context in mentioned
        if host not in REFERENCE_ONLY_HOSTS and not MONACO_CDN_FALLBACK.fullmatch(url)
    ]
    assert unexplained == [], "unexpected hosts in the Laboratory:\n" + "\n".join(map(repr, unexplained))

    # ... except the Monaco loader's CDN fallback: it is only the loader's default config, and the bundle
    # hands the loader its own Monaco instead, so the fallback is never taken (the browser test proves it)
    assert [url for url, _, _ in mentioned if MONACO_CDN_FALLBACK.fullmatch(url)], "fallback moved? re-check"
    in_loader_default = re.findall(r"\{paths:\{vs:`(https://[^`]+)`\}\}", script)
    assert in_loader_default == re.findall(MONACO_CDN_FALLBACK, script)
    bundled = re.search(r"window\.monaco=([\w$]+)\),[\w$]+\.config\(\{monaco:\1\}\)", script)
    assert bundled, "the Laboratory no longer hands its bundled Monaco to @monaco-editor/loader"


# --- a browser's live subscription through the fan-out tier ------------------------------------------

BROWSER_SUBSCRIBE = """
async ([url, token, query, channelId]) => {
  const ws = new WebSocket(url, 'graphql-transport-ws');
  const frames = [];
  const received = new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      frames.push(message.type);
      if (message.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { channelId } } }));
        window.__subscribed = true;
      } else if (message.type === 'next') {
        resolve(message.payload);
      }
    };
  });
  ws.onopen = () =>
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  const payload = await received;
  ws.close();
  return { payload, frames };
}
"""


@dataclass
class Guild:
    """A signed-up user's private server with one text channel, and HTTP calls to the router."""

    http: httpx.Client
    url: str
    token: str
    channel_id: str

    def run(self, query: str, variables: dict[str, object], token: str | None = None) -> dict[str, object]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        body = self.http.post(self.url, json={"query": query, "variables": variables}, headers=headers).json()
        assert not body.get("errors"), body
        return body["data"]  # type: ignore[no-any-return]

    def send(self, content: str) -> dict[str, object]:
        sent = self.run(
            SEND_MESSAGE, {"input": {"channelId": self.channel_id, "content": content}}, self.token
        )
        return sent["sendMessage"]  # type: ignore[return-value]


@contextmanager
def guild(url: str) -> Iterator[Guild]:
    with httpx.Client(timeout=30) as http:
        made = Guild(http, url, "", "")
        name = f"browser{uuid.uuid4().hex[:8]}"
        account = {
            "firstName": "B",
            "lastName": "Rowser",
            "username": name,
            "email": f"{name}@example.test",
            "password": f"pw-{uuid.uuid4().hex}",
        }
        made.token = made.run(SIGN_UP, {"input": account})["signUp"]["accessToken"]  # type: ignore[index]
        server = made.run(CREATE_SERVER, {"input": {"name": "Browsers", "visibility": "PRIVATE"}}, made.token)
        server_id = server["createServer"]["id"]  # type: ignore[index]
        channel = made.run(CREATE_CHANNEL, {"input": {"serverId": server_id, "name": "live"}}, made.token)
        made.channel_id = channel["createChannel"]["id"]  # type: ignore[index]
        yield made


def test_a_browser_page_receives_a_shared_live_event(embedded_stack: Stack, tmp_path: Path) -> None:
    """Chromium, on the router's own page (so its WebSocket carries that Origin), subscribes to a channel
    through the fan-out tier and receives a message sent over HTTP: one URL for both."""
    url = embedded_stack.router_url
    with guild(url) as made, laboratory_browser(tmp_path / "browser-live.png") as (page, traffic):
        page.goto(url, wait_until="load")
        pending = page.evaluate_handle(
            "(args) => { window.__result = (" + BROWSER_SUBSCRIBE + ")(args); return true; }",
            [url.replace("http://", "ws://"), made.token, MESSAGE_EVENTS, made.channel_id],
        )
        pending.dispose()
        page.wait_for_function("window.__subscribed === true")
        page.wait_for_timeout(500)  # the shared stream subscribes upstream
        sent = made.send("hello, browser")
        result = page.evaluate("window.__result")
        traffic.assert_stayed_on_host()
    event = result["payload"]["data"]["messageEvents"]
    assert event["__typename"] == "MessageCreated", result
    assert event["message"]["id"] == sent["id"]
    assert event["message"]["content"] == "hello, browser"
    assert event["message"]["channel"]["name"] == "live"
    assert any(urlsplit(ws).path == "/graphql" for ws in traffic.websockets)


# --- a subscription run from the Laboratory itself ---------------------------------------------------


def editor(page: Page, uri: str) -> Locator:
    return page.locator(f'.monaco-editor[data-uri^="{uri}"]')


def replace_text(page: Page, target: Locator, text: str) -> None:
    target.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text(text)  # as a paste: typing would fight Monaco's bracket auto-closing


@pytest.mark.browser
def test_a_laboratory_subscription_shows_a_live_message(embedded_stack: Stack, tmp_path: Path) -> None:
    """A developer runs `messageEvents` in the router's Laboratory, signed in through its Headers tab, and
    sees a message that someone sends over HTTP appear in the page (through the fan-out tier)."""
    url = embedded_stack.router_url
    with guild(url) as made, laboratory_browser(tmp_path / "laboratory-live.png") as (page, traffic):
        # given: the Laboratory with a subscription and the developer's token in its Headers tab
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Add operation").first.click()
        subscription = (
            f'subscription {{ messageEvents(channelId: "{made.channel_id}") '
            "{ __typename ... on MessageCreated { message { id content channel { name } } } } }"
        )
        operation = editor(page, "file:///operation_")
        expect(operation).to_be_visible(timeout=UI_TIMEOUT_MS)
        replace_text(page, operation, subscription)
        page.get_by_role("tab", name="Headers").click()
        headers = editor(page, "file:///headers.json")
        expect(headers).to_be_visible()
        replace_text(page, headers, json.dumps({"authorization": f"Bearer {made.token}"}))

        # when: they run it, and a message is sent over HTTP once it listens
        def is_the_subscription(request: Request) -> bool:
            return urlsplit(request.url).path == "/graphql" and "messageEvents" in unquote(request.url) + (
                request.post_data or ""
            )

        with page.expect_request(is_the_subscription) as asked:
            page.get_by_role("button", name="Run", exact=True).click()
        expect(page.get_by_text("Listening", exact=True)).to_be_visible()
        assert asked.value.headers.get("authorization") == f"Bearer {made.token}"
        page.wait_for_timeout(500)  # the shared stream subscribes upstream
        sent = made.send("hello, laboratory")

        # then: the event appears in the page
        shown = page.locator(".monaco-editor .view-lines").filter(has_text="hello, laboratory")
        expect(shown.first).to_be_visible()
        text = shown.first.inner_text().replace("\xa0", " ")
        assert str(sent["id"]) in text and '"__typename": "MessageCreated"' in text, text
        traffic.assert_stayed_on_host()
