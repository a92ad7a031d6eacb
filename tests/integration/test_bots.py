"""Bot accounts through the router: created by a manager, signed in with a bot token exchanged for a
short-lived access token, posting like any member and refused where its roles forbid."""

from __future__ import annotations

import jwt

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    SEND_MESSAGE,
    create_channel,
    create_server,
    sign_up,
    subscribe_settled,
    unique,
)

CREATE_BOT = """mutation($i: CreateBotInput!) { createBot(input: $i) { __typename
  ... on BotSecret { token bot { id hasToken user { id username bot } server { id } } }
  ... on UserError { code field } } }"""
BOT_SIGN_IN = """mutation($t: String!) { botSignIn(token: $t) { __typename
  ... on BotSession { accessToken expiresIn user { id username bot } }
  ... on UserError { code message field } } }"""
REGENERATE = """mutation($b: ID!) { regenerateBotToken(botId: $b) { __typename
  ... on BotSecret { token } ... on UserError { code field } } }"""
REVOKE = """mutation($b: ID!) { revokeBotToken(botId: $b) { __typename
  ... on Bot { id hasToken } ... on UserError { code field } } }"""
BOTS = "query($s: ID!) { bots(serverId: $s) { id hasToken user { username } } }"
SET_OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) {
  __typename ... on Channel { id } ... on UserError { code field } } }"""
MY_SERVERS = "{ myServers { id } }"
SERVER_EVENTS = """subscription($s: ID!) { serverEvents(serverId: $s) {
  __typename ... on MemberEvent { memberChange user { id bot } } } }"""
CREATE_ROLE = """mutation($i: CreateRoleInput!) { createRole(input: $i) { __typename
  ... on Role { id } ... on UserError { code field } } }"""
ASSIGN_ROLE = """mutation($i: MemberRoleInput!) { assignRole(input: $i) { __typename
  ... on Role { id } ... on UserError { code field } } }"""
CREATE_WEBHOOK = """mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { __typename
  ... on WebhookSecret { token } ... on UserError { code field } } }"""


async def sign_in_bot(anonymous: GraphQLClient, token: str) -> dict:
    return (await anonymous.data(BOT_SIGN_IN, {"t": token}))["botSignIn"]


async def test_bot_account_posts_through_the_router_within_its_permissions(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "botowner"), await sign_up(anonymous, "botbob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Bots")
    general = await create_channel(as_owner, server["id"], "general")
    announcements = await create_channel(as_owner, server["id"], "announcements")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})

    # Given a bot created by the owner (Manage Server): a member flagged bot, its token shown once,
    # announced live like any member's arrival
    name = unique("deploybot")
    async with as_bob.subscriptions() as connection:
        stream = await subscribe_settled(connection, SERVER_EVENTS, {"s": server["id"]})
        created = (await as_owner.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": name}}))[
            "createBot"
        ]
        assert created["__typename"] == "BotSecret", created
        bot, token = created["bot"], created["token"]
        joined = await stream.next()
        assert joined["payload"]["data"]["serverEvents"] == {
            "__typename": "MemberEvent",
            "memberChange": "JOINED",
            "user": {"id": bot["id"], "bot": True},
        }
    assert bot["user"] == {"id": bot["id"], "username": name, "bot": True} and bot["hasToken"] is True
    assert token.startswith(f"{bot['id']}.")
    listed = (await as_owner.data(BOTS, {"s": server["id"]}))["bots"]
    assert listed == [{"id": bot["id"], "hasToken": True, "user": {"username": name}}]
    # a member without Manage Server neither creates nor lists bots; a taken username is refused
    refused = (await as_bob.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": unique("b")}}))[
        "createBot"
    ]
    assert (refused["__typename"], refused["code"]) == ("PermissionError", "FORBIDDEN")
    assert (await as_bob.data(BOTS, {"s": server["id"]}))["bots"] is None
    taken = (await as_owner.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": bob.username}}))[
        "createBot"
    ]
    assert (taken["__typename"], taken["code"]) == ("ConflictError", "USERNAME_TAKEN")

    # When it exchanges its token for an access token (anonymously, through the router)
    session = await sign_in_bot(anonymous, token)
    assert session["__typename"] == "BotSession" and session["user"]["bot"] is True
    claims = jwt.decode(session["accessToken"], options={"verify_signature": False})
    assert (
        claims["beep_user_id"] == bot["id"] and claims["exp"] - claims["iat"] == session["expiresIn"] == 300
    )
    as_bot = anonymous.with_token(session["accessToken"])

    # Then it is a member like any other: it sees the server and posts where @everyone may
    assert server["id"] in [s["id"] for s in (await as_bot.data(MY_SERVERS))["myServers"]]
    sent = (
        await as_bot.data(SEND_MESSAGE, {"input": {"channelId": general["id"], "content": "build green"}})
    )["sendMessage"]
    assert sent["__typename"] == "Message" and sent["author"] == {"id": bot["id"], "username": name}

    # and is refused where its roles forbid: a "Bots" role denied Send Messages in #announcements
    bots_role = (
        await as_owner.data(
            CREATE_ROLE, {"i": {"serverId": server["id"], "name": "Bots", "permissions": "0"}}
        )
    )["createRole"]
    assert bots_role["__typename"] == "Role", bots_role
    denied = await as_owner.data(
        SET_OVERWRITE,
        {
            "i": {
                "channelId": announcements["id"],
                "targetKind": "ROLE",
                "targetId": bots_role["id"],
                "deny": str(int(Permission.SEND_MESSAGES)),
            }
        },
    )
    assert denied["setChannelOverwrite"]["__typename"] == "Channel"
    hello = {"input": {"channelId": announcements["id"], "content": "hello"}}
    assert (await as_bot.data(SEND_MESSAGE, hello))["sendMessage"]["__typename"] == "Message"  # not yet
    await as_owner.data(ASSIGN_ROLE, {"i": {"roleId": bots_role["id"], "userId": bot["id"]}})
    forbidden = (await as_bot.data(SEND_MESSAGE, hello))["sendMessage"]
    assert (forbidden["__typename"], forbidden["code"]) == ("PermissionError", "FORBIDDEN")
    # ... and bots "use mutations" with what their roles grant: Manage Webhooks makes it a webhook manager
    hook = {"i": {"channelId": general["id"], "name": "from a bot"}}
    assert (await as_bot.data(CREATE_WEBHOOK, hook))["createWebhook"]["__typename"] == "PermissionError"
    hooks_role = (
        await as_owner.data(
            CREATE_ROLE,
            {
                "i": {
                    "serverId": server["id"],
                    "name": "Hooks",
                    "permissions": str(int(Permission.MANAGE_WEBHOOKS)),
                }
            },
        )
    )["createRole"]
    await as_owner.data(ASSIGN_ROLE, {"i": {"roleId": hooks_role["id"], "userId": bot["id"]}})
    assert (await as_bot.data(CREATE_WEBHOOK, hook))["createWebhook"]["__typename"] == "WebhookSecret"
    no_bot = (await as_bot.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": unique("c")}}))[
        "createBot"
    ]
    assert no_bot["__typename"] == "PermissionError"  # Manage Server it was not given

    # regenerating ends the old token at once; revoking ends any
    fresh = (await as_owner.data(REGENERATE, {"b": bot["id"]}))["regenerateBotToken"]
    assert fresh["__typename"] == "BotSecret" and fresh["token"] != token
    old = await sign_in_bot(anonymous, token)
    assert (old["__typename"], old["code"]) == ("AuthenticationError", "INVALID_CREDENTIALS")
    assert (await sign_in_bot(anonymous, fresh["token"]))["__typename"] == "BotSession"
    revoked = (await as_owner.data(REVOKE, {"b": bot["id"]}))["revokeBotToken"]
    assert revoked == {"__typename": "Bot", "id": bot["id"], "hasToken": False}
    after = await sign_in_bot(anonymous, fresh["token"])
    assert (after["__typename"], after["code"]) == ("AuthenticationError", "INVALID_CREDENTIALS")
    for garbage in ("", "nope", f"{bot['id']}.", f"{owner.user_id}.secret"):
        answer = await sign_in_bot(anonymous, garbage)
        assert (answer["__typename"], answer["message"]) == (after["__typename"], after["message"])

    # another server's manager cannot touch the bot (not found, as if it did not exist)
    stranger = anonymous.with_token((await sign_up(anonymous, "botstranger")).token)
    await create_server(stranger, "Elsewhere")
    for query in (REGENERATE, REVOKE):
        payload = next(iter((await stranger.data(query, {"b": bot["id"]})).values()))
        assert (payload["__typename"], payload["code"]) == ("NotFoundError", "NOT_FOUND")


async def test_bot_cannot_sign_in_with_a_password(stack: Stack) -> None:
    """A bot has no password: signIn with its (unusable) address and any password is refused."""
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "botpw")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "NoPw")
    created = (
        await as_owner.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": unique("pwbot")}})
    )["createBot"]
    email = f"bot-{created['bot']['id']}@bots.beep.invalid"
    for password in ("", "x" * 12):
        result = await anonymous.execute(
            "mutation($i: SignInInput!) { signIn(input: $i) { __typename ... on UserError { code } } }",
            {"i": {"email": email, "password": password}},
        )
        payload = (result.data or {}).get("signIn") or {}
        assert payload.get("__typename") != "AuthPayload", result
    # deleting the server takes its bots' tokens with it
    assert (await sign_in_bot(anonymous, created["token"]))["__typename"] == "BotSession"
    deleted = await as_owner.data(
        "mutation($s: ID!, $n: String!) { deleteServer(serverId: $s, confirmName: $n) { __typename } }",
        {"s": server["id"], "n": "NoPw"},
    )
    assert deleted["deleteServer"]["__typename"] == "ServerDeletion", deleted
    assert (await sign_in_bot(anonymous, created["token"]))["__typename"] == "AuthenticationError"


async def test_bot_tokens_work_under_each_identity_provider(identity: Stack) -> None:
    """Under Keycloak too: the bot's access token comes from the built-in issuer, which the router (told
    to trust both issuers) and the subgraphs accept alongside Keycloak's."""
    anonymous = GraphQLClient(identity.router_url)
    owner = await sign_up(anonymous, "idbot")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "Providers")
    channel = await create_channel(as_owner, server["id"], "general")
    created = (
        await as_owner.data(CREATE_BOT, {"i": {"serverId": server["id"], "username": unique("idbot")}})
    )["createBot"]
    session = await sign_in_bot(anonymous, created["token"])
    as_bot = anonymous.with_token(session["accessToken"])
    sent = (await as_bot.data(SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": "hi"}}))[
        "sendMessage"
    ]
    assert sent["__typename"] == "Message" and sent["author"]["id"] == created["bot"]["id"]
