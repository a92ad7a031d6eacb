"""Webhooks through the router, as Discord tooling and Beep clients use them: managed over GraphQL,
executed over plain HTTP (`POST <router>/webhooks/{id}/{token}`, Discord's payloads and answers) and over
GraphQL (`executeWebhook`); messages arrive live for `messageEvents` subscribers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import create_channel, create_server, sign_up, subscribe_settled
from tests.integration.webhook_flows import CREATE, WEBHOOK_FIELDS, base_url, create_webhook, setup

UPDATE = f"""mutation($i: UpdateWebhookInput!) {{ updateWebhook(input: $i) {{ __typename
  ... on Webhook {{ {WEBHOOK_FIELDS} }} ... on UserError {{ code field }} }} }}"""
REGENERATE = """mutation($id: ID!) { regenerateWebhookToken(id: $id) { __typename
  ... on WebhookSecret { token url } ... on UserError { code field } } }"""
DELETE = """mutation($id: ID!) { deleteWebhook(id: $id) { __typename
  ... on WebhookDeleted { id } ... on UserError { code field } } }"""
LIST = f"query($c: ID!) {{ webhooks(channelId: $c) {{ {WEBHOOK_FIELDS} }} }}"
EXECUTE = """mutation($id: ID!, $token: String!, $i: ExecuteWebhookInput!) {
  executeWebhook(id: $id, token: $token, input: $i) { __typename
    ... on WebhookExecution { messageId channelId sentMessage { id content webhook { name } } }
    ... on UserError { code message field } } }"""
AUDIT = """query($s: ID!) { auditLog(serverId: $s) { action targetKind targetId context } }"""
EVENTS = """subscription($channelId: ID!) { messageEvents(channelId: $channelId) { __typename
  ... on MessageCreated { message { id content mentionsEveryone author { id } mentions { id }
      webhook { id name avatarUrl bot } channel { id }
      embeds { title description url color timestamp footer { text iconUrl } author { name url iconUrl }
               thumbnail { url } image { url } fields { name value inline } } } } } }"""

# Real-world payloads, as public Discord webhook examples send them.
PLAIN = {"content": "Hello, World!"}
# The "Discord Webhooks Guide" (birdie0) full example: author, fields, thumbnail, image, footer.
GUIDE = {
    "username": "Webhook",
    "avatar_url": "https://i.imgur.com/4M34hi2.png",
    "content": "Text message. Up to 2000 characters.",
    "embeds": [
        {
            "author": {
                "name": "Birdie♫",
                "url": "https://www.reddit.com/r/cats/",
                "icon_url": "https://i.imgur.com/R66g1Pe.jpg",
            },
            "title": "Title",
            "url": "https://google.com/",
            "description": "Text message. You can use Markdown here. *Italic* **bold** __underline__ "
            "~~strikeout~~ [hyperlink](https://google.com) `code`",
            "color": 15258703,
            "fields": [
                {"name": "Text", "value": "More text", "inline": True},
                {"name": "Even more text", "value": "Yup", "inline": True},
                {
                    "name": 'Use `"inline": true` parameter, if you want to display fields in the same line.',
                    "value": "okay...",
                },
                {"name": "Thanks!", "value": "You're welcome :wink:"},
            ],
            "thumbnail": {
                "url": "https://upload.wikimedia.org/wikipedia/commons/3/38/4-Nature-Wallpapers.jpg"
            },
            "image": {"url": "https://upload.wikimedia.org/wikipedia/commons/5/5a/A_picture_from_China.jpg"},
            "footer": {"text": "Woah! So cool! :smirk:", "icon_url": "https://i.imgur.com/fKL31aD.jpg"},
        }
    ],
}
# An alerting tool's notification (Grafana-style): title, description, colour, timestamp, footer only.
ALERT = {
    "username": "Grafana",
    "embeds": [
        {
            "title": "[FIRING:1] HighCPU (prod-db-1)",
            "description": "**Value:** 97.3%\n**Labels:** alertname=HighCPU, instance=prod-db-1",
            "url": "https://grafana.example.com/alerting/list",
            "color": 16711680,
            "timestamp": "2026-11-28T06:00:00.000Z",
            "footer": {
                "text": "Grafana v11.3.0",
                "icon_url": "https://grafana.com/static/assets/img/fav32.png",
            },
        }
    ],
}


async def post(
    stack: Stack, path: str, body: Any = None, *, retry_limited: bool = True, **kwargs: Any
) -> httpx.Response:
    """POST as Discord tooling does: on 429 wait Retry-After and try again (unless testing the 429)."""
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            response = await http.post(
                f"{base_url(stack)}{path}", **({"json": body} if body is not None else {}), **kwargs
            )
            if response.status_code != 429 or not retry_limited:
                return response
            await asyncio.sleep(float(response.headers["retry-after"]))


async def execute(client: GraphQLClient, variables: dict[str, Any]) -> dict[str, Any]:
    """executeWebhook as a well-behaved bot sends it: on RATE_LIMITED wait retryAfter and try again."""
    while True:
        result = await client.execute(EXECUTE, variables)
        limited = [e for e in result.errors or [] if e.get("extensions", {}).get("code") == "RATE_LIMITED"]
        if not limited:
            assert not result.errors, result.errors
            assert result.data is not None
            return result.data["executeWebhook"]
        await asyncio.sleep(float(limited[0]["extensions"]["retryAfter"]))


async def next_created(operation: Any) -> dict[str, Any]:
    message = await operation.next()
    assert message["type"] == "next", message
    event = message["payload"]["data"]["messageEvents"]
    assert event["__typename"] == "MessageCreated", event
    return event["message"]


async def test_webhook_lifecycle_with_discord_payloads(stack: Stack) -> None:
    anonymous, owner, bob, as_owner, as_bob, server, channel = await setup(stack)

    # Given a webhook created by the owner (its secret URL shown once)
    created = await create_webhook(as_owner, channel["id"], "Deploy bot")
    hook, token = created["webhook"], created["token"]
    path = f"/webhooks/{hook['id']}/{token}"
    assert created["url"].endswith(path) and hook["creator"]["id"] == owner.user_id
    listed = (await as_owner.data(LIST, {"c": channel["id"]}))["webhooks"]
    assert [w["id"] for w in listed] == [hook["id"]] and "token" not in json.dumps(listed)
    # a member without Manage Webhooks neither creates nor lists
    refused = (await as_bob.data(CREATE, {"i": {"channelId": channel["id"], "name": "x"}}))["createWebhook"]
    assert (refused["__typename"], refused["code"]) == ("PermissionError", "FORBIDDEN")
    assert (await as_bob.data(LIST, {"c": channel["id"]}))["webhooks"] is None

    async with as_bob.subscriptions() as connection:
        live = await subscribe_settled(connection, EVENTS, {"channelId": channel["id"]})

        # plain content, no wait: 204 with Discord's rate-limit headers
        response = await post(stack, path, PLAIN)
        assert response.status_code == 204, response.text
        assert response.headers["x-ratelimit-limit"] == "5"
        assert int(response.headers["x-ratelimit-remaining"]) <= 4
        assert float(response.headers["x-ratelimit-reset-after"]) <= 2
        message = await next_created(live)
        assert message["content"] == "Hello, World!" and message["author"] is None
        assert message["webhook"] == {"id": hook["id"], "name": "Deploy bot", "avatarUrl": None, "bot": True}

        # the guide's full embed, ?wait=true: the message comes back Discord-shaped
        response = await post(stack, f"{path}?wait=true", GUIDE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["author"]["username"] == "Webhook" and body["author"]["bot"] is True
        assert body["webhook_id"] == hook["id"] and body["channel_id"] == channel["id"]
        assert body["embeds"][0]["title"] == "Title" and len(body["embeds"][0]["fields"]) == 4
        assert body["embeds"][0]["fields"][2]["inline"] is False
        message = await next_created(live)
        assert message["id"] == body["id"]
        assert message["webhook"]["name"] == "Webhook"
        assert message["webhook"]["avatarUrl"] == "https://i.imgur.com/4M34hi2.png"
        embed = message["embeds"][0]
        assert embed["author"] == {
            "name": "Birdie♫",
            "url": "https://www.reddit.com/r/cats/",
            "iconUrl": "https://i.imgur.com/R66g1Pe.jpg",
        }
        assert embed["color"] == 15258703 and embed["footer"]["text"] == "Woah! So cool! :smirk:"
        assert embed["thumbnail"]["url"].endswith("4-Nature-Wallpapers.jpg") and embed["image"]["url"]
        assert [f["inline"] for f in embed["fields"]] == [True, True, False, False]

        # multipart/form-data with payload_json (how Discord libraries send when they could attach files)
        response = await post(
            stack, path, files={"payload_json": (None, json.dumps(ALERT), "application/json")}
        )
        assert response.status_code == 204, response.text
        message = await next_created(live)
        assert message["webhook"]["name"] == "Grafana" and message["content"] == ""
        assert message["embeds"][0]["timestamp"].startswith("2026-11-28T06:00:00")
        assert message["embeds"][0]["color"] == 16711680

        # allowed_mentions: {"parse": []} pings nobody (the mention stays readable as text) ...
        quiet = {"content": f"<@{bob.user_id}> deployed @everyone", "allowed_mentions": {"parse": []}}
        body = (await post(stack, f"{path}?wait=true", quiet)).json()
        assert body["mentions"] == [] and body["mention_everyone"] is False
        assert body["content"] == f"@{bob.username} deployed @everyone"
        message = await next_created(live)
        assert message["mentions"] == [] and message["mentionsEveryone"] is False
        # ... `users: [id]` pings exactly them; the default pings users and everyone
        loud = {"content": f"<@{bob.user_id}> please review", "allowed_mentions": {"users": [bob.user_id]}}
        body = (await post(stack, f"{path}?wait=true", loud)).json()
        assert [m["id"] for m in body["mentions"]] == [bob.user_id]
        assert (await next_created(live))["mentions"] == [{"id": bob.user_id}]
        body = (await post(stack, f"{path}?wait=true", {"content": "@everyone release is out"})).json()
        assert body["mention_everyone"] is True
        assert (await next_created(live))["mentionsEveryone"] is True

        # over GraphQL, anonymously (the token is the credential); the message is resolved for readers only
        executed = await execute(
            anonymous, {"id": hook["id"], "token": token, "i": {"content": "via GraphQL"}}
        )
        assert executed["__typename"] == "WebhookExecution" and executed["sentMessage"] is None
        assert (await next_created(live))["content"] == "via GraphQL"
        executed = await execute(
            as_bob,
            {
                "id": hook["id"],
                "token": token,
                "i": {
                    "content": "with an embed",
                    "embeds": [{"title": "T", "fields": [{"name": "a", "value": "b"}]}],
                },
            },
        )
        assert executed["sentMessage"] == {
            "id": executed["messageId"],
            "content": "with an embed",
            "webhook": {"name": "Deploy bot"},
        }
        assert (await next_created(live))["embeds"][0]["fields"] == [
            {"name": "a", "value": "b", "inline": False}
        ]

        # edit: name and avatar show on the next message
        updated = (
            await as_owner.data(
                UPDATE,
                {"i": {"id": hook["id"], "name": "Release bot", "avatarUrl": "https://example.com/a.png"}},
            )
        )["updateWebhook"]
        assert (updated["name"], updated["avatarUrl"]) == ("Release bot", "https://example.com/a.png")
        assert (await post(stack, path, {"content": "renamed"})).status_code == 204
        message = await next_created(live)
        assert message["webhook"]["name"] == "Release bot"
        assert message["webhook"]["avatarUrl"] == "https://example.com/a.png"

        # regenerate: the old token is refused like any wrong token; the new one works
        secret = (await as_owner.data(REGENERATE, {"id": hook["id"]}))["regenerateWebhookToken"]
        new_path = f"/webhooks/{hook['id']}/{secret['token']}"
        old = await post(stack, path, PLAIN)
        assert (old.status_code, old.json()) == (401, {"code": 50027, "message": "Invalid Webhook Token"})
        assert (await post(stack, new_path, {"content": "new token"})).status_code == 204
        assert (await next_created(live))["content"] == "new token"
        await live.expect_nothing(0.5)  # the refused post wrote nothing

    # move to another channel of the same server: messages follow; another server's channel is refused
    other = await create_channel(as_owner, server["id"], "releases")
    moved = (await as_owner.data(UPDATE, {"i": {"id": hook["id"], "channelId": other["id"]}}))[
        "updateWebhook"
    ]
    assert moved["channel"]["id"] == other["id"]
    body = (await post(stack, f"{new_path}?wait=true", {"content": "moved"})).json()
    assert body["channel_id"] == other["id"]
    elsewhere = await create_channel(as_owner, (await create_server(as_owner, "Other"))["id"], "x")
    refused = (await as_owner.data(UPDATE, {"i": {"id": hook["id"], "channelId": elsewhere["id"]}}))[
        "updateWebhook"
    ]
    assert (refused["__typename"], refused["field"]) == ("NotFoundError", "channelId")

    # delete: the token's holder is told 404; a wrong token still 401 (no hint)
    deleted = (await as_owner.data(DELETE, {"id": hook["id"]}))["deleteWebhook"]
    assert deleted == {"__typename": "WebhookDeleted", "id": hook["id"]}
    gone = await post(stack, new_path, PLAIN)
    assert (gone.status_code, gone.json()["code"]) == (404, 10015)
    assert (await post(stack, path, PLAIN)).status_code == 401
    assert (await as_owner.data(LIST, {"c": channel["id"]}))["webhooks"] == []

    # every change is in the audit log
    entries = (await as_owner.data(AUDIT, {"s": server["id"]}))["auditLog"]
    actions = [e["action"] for e in entries if e["targetId"] == hook["id"]]
    assert actions == [
        "WEBHOOK_DELETE",
        "WEBHOOK_UPDATE",
        "WEBHOOK_UPDATE",
        "WEBHOOK_UPDATE",
        "WEBHOOK_CREATE",
    ]
    assert "regenerated" in json.dumps([e["context"] for e in entries])
    assert token not in json.dumps(entries) and secret["token"] not in json.dumps(entries)


def discord_field(response: httpx.Response) -> str:
    return str(response.json().get("field"))


async def test_webhook_bad_requests(stack: Stack) -> None:
    anonymous, _owner, bob, as_owner, _as_bob, _server, channel = await setup(stack)
    created = await create_webhook(as_owner, channel["id"])
    hook_id, token = created["webhook"]["id"], created["token"]
    path = f"/webhooks/{hook_id}/{token}"

    # credentials: a wrong token, an unknown id and a malformed id look the same
    wrong = await post(stack, f"/webhooks/{hook_id}/{'x' * 64}", PLAIN)
    unknown = await post(stack, f"/webhooks/{int(hook_id) + 1}/{token}", PLAIN)
    malformed = await post(stack, f"/webhooks/nope/{token}", PLAIN)
    assert {r.status_code for r in (wrong, unknown, malformed)} == {401}
    assert (
        wrong.json()
        == unknown.json()
        == malformed.json()
        == {"code": 50027, "message": "Invalid Webhook Token"}
    )

    long_text = "x" * 257
    cases: list[tuple[Any, str, str]] = [
        ({"content": "x" * 2001}, "content", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"title": "t"}] * 11}, "embeds", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"title": long_text}]}, "embeds.0.title", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"description": "d" * 4097}]}, "embeds.0.description", "BASE_TYPE_MAX_LENGTH"),
        (
            {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]},
            "embeds.0.fields",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            {"embeds": [{"fields": [{"name": long_text, "value": "v"}]}]},
            "embeds.0.fields.0.name",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            {"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]},
            "embeds.0.fields.0.value",
            "BASE_TYPE_MAX_LENGTH",
        ),
        ({"embeds": [{"fields": [{"name": "n"}]}]}, "embeds.0.fields.0.value", "BASE_TYPE_REQUIRED"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}]}, "embeds.0.footer.text", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"author": {"name": long_text}}]}, "embeds.0.author.name", "BASE_TYPE_MAX_LENGTH"),
        (
            {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]},
            "embeds",
            "MAX_EMBED_SIZE_EXCEEDED",
        ),
        ({"embeds": [{"title": "t", "color": 16777216}]}, "embeds.0.color", "NUMBER_TYPE_MAX"),
        (
            {"embeds": [{"title": "t", "timestamp": "yesterday"}]},
            "embeds.0.timestamp",
            "DATE_TIME_TYPE_PARSE",
        ),
        ({"embeds": [{"title": "t", "url": "javascript:alert(1)"}]}, "embeds.0.url", "URL_TYPE_INVALID_URL"),
        ({"content": "hi", "avatar_url": "ftp://example.com/a.png"}, "avatar_url", "URL_TYPE_INVALID_URL"),
        ({"content": "hi", "username": "x" * 81}, "username", "BASE_TYPE_MAX_LENGTH"),
        ({"content": "hi", "embeds": "nope"}, "embeds", "BASE_TYPE_BAD_TYPE"),
        (
            {"content": "hi", "allowed_mentions": {"parse": ["users"], "users": [bob.user_id]}},
            "allowed_mentions.users",
            "SET_TYPE_ALREADY_CONTAINS_VALUE",
        ),
        (
            {"content": "hi", "allowed_mentions": {"parse": ["channels"]}},
            "allowed_mentions.parse.0",
            "ENUM_TYPE_COERCE",
        ),
    ]
    for body, field, kind in cases:
        response = await post(stack, path, body)
        assert response.status_code == 400, (field, response.text)
        answer = response.json()
        assert (answer["code"], answer["message"], answer["field"]) == (50035, "Invalid Form Body", field), (
            answer
        )
        node = answer["errors"]
        for part in field.split("."):
            node = node[part]
        assert node["_errors"][0]["code"] == kind, answer

    empty = await post(stack, path, {"content": "   "})
    assert (empty.status_code, empty.json()["code"]) == (400, 50006)
    bad_json = await post(stack, path, content=b"{not json", headers={"content-type": "application/json"})
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, 50109)
    bad_wait = await post(stack, f"{path}?wait=maybe", PLAIN)
    assert (bad_wait.status_code, discord_field(bad_wait)) == (400, "wait")
    huge = await post(stack, path, {"content": "x" * (300 * 1024)})
    assert huge.status_code == 413
    # A multipart body may carry files (test_webhook_files.py), its payload_json no more than a JSON body
    huge_part = await post(
        stack, path, files={"payload_json": (None, json.dumps({"content": "x" * (300 * 1024)}))}
    )
    assert huge_part.status_code == 413, (huge_part.status_code, huge_part.text)
    assert huge_part.json()["code"] == 40005
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.delete(f"{base_url(stack)}{path}")).status_code == 405
        # GET is Discord's Get Webhook with Token: the webhook, for the token's holder only
        found = await http.get(f"{base_url(stack)}/api{path}")
        assert found.status_code == 200 and found.json()["name"] == "CI"
        assert found.json()["channel_id"] == channel["id"] and found.json()["type"] == 1
        assert (await http.get(f"{base_url(stack)}/webhooks/{hook_id}/wrong")).status_code == 401

    # GraphQL: the same rules, as ValidationError with the (camelCase) field; credentials alike
    too_long = await execute(
        anonymous, {"id": hook_id, "token": token, "i": {"embeds": [{"title": long_text}]}}
    )
    assert (too_long["__typename"], too_long["code"], too_long["field"]) == (
        "ValidationError",
        "TOO_LONG",
        "embeds.0.title",
    )
    icon = await execute(
        anonymous,
        {"id": hook_id, "token": token, "i": {"embeds": [{"footer": {"text": "f", "iconUrl": "nope"}}]}},
    )
    assert icon["field"] == "embeds.0.footer.iconUrl"
    refused = await execute(anonymous, {"id": hook_id, "token": "wrong", "i": PLAIN})
    assert (refused["__typename"], refused["code"]) == ("AuthenticationError", "INVALID_CREDENTIALS")
    nobody = await execute(anonymous, {"id": "nope", "token": token, "i": PLAIN})
    assert (nobody["__typename"], nobody["message"]) == (refused["__typename"], refused["message"])

    # rate limit: 5 per 2 s per webhook; over it 429 with Retry-After and Discord's headers, nothing written
    responses = await asyncio.gather(*(post(stack, path, PLAIN, retry_limited=False) for _ in range(12)))
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.status_code in (204, 429) for r in responses)
    first = limited[0]
    assert int(first.headers["retry-after"]) >= 1 and first.headers["x-ratelimit-remaining"] == "0"
    assert first.headers["x-ratelimit-limit"] == "5" and first.headers["x-ratelimit-bucket"]
    assert first.json()["global"] is False and 0 < first.json()["retry_after"] <= 2
    graphql_limited = None
    for _ in range(8):
        result = await anonymous.execute(EXECUTE, {"id": hook_id, "token": token, "i": PLAIN})
        if result.errors:
            graphql_limited = result.errors[0]
            break
    assert graphql_limited is not None and graphql_limited["extensions"]["code"] == "RATE_LIMITED"
    assert graphql_limited["extensions"]["retryAfter"] >= 1
    await asyncio.sleep(2.1)  # the rate-limit window under test runs out
    assert (await post(stack, path, PLAIN, retry_limited=False)).status_code == 204

    # another server's manager cannot touch this webhook (not found, as if it did not exist)
    stranger = anonymous.with_token((await sign_up(anonymous, "stranger")).token)
    await create_server(stranger, "Mine")
    for query, variables in ((DELETE, {"id": hook_id}), (REGENERATE, {"id": hook_id})):
        payload = next(iter((await stranger.data(query, variables)).values()))
        assert (payload["__typename"], payload["code"]) == ("NotFoundError", "NOT_FOUND")
    assert (await stranger.data("query($id: ID!) { webhook(id: $id) { id } }", {"id": hook_id}))[
        "webhook"
    ] is None
