"""In-app invitations: a member invites a user directly; the user sees it, accepts or declines."""

from __future__ import annotations

from typing import Any

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.stack import Stack
from tests.integration.flows import Users, create_server, grant_role, outcome

ERRORS = "... on UserError { code message field }"
INVITE_USER = f"""mutation($s: ID!, $u: ID!) {{ inviteUser(serverId: $s, userId: $u) {{
  __typename ... on Invitation {{ id }} {ERRORS} }} }}"""
MY_INVITATIONS = """{ myInvitations { id createdAt inviter { id } serverPreview { id name memberCount } } }"""
ACCEPT = f"""mutation($i: ID!) {{ acceptInvitation(id: $i) {{
  __typename ... on Server {{ id viewerIsMember }} {ERRORS} }} }}"""
DECLINE = f"""mutation($i: ID!) {{ declineInvitation(id: $i) {{
  __typename ... on InvitationDeclined {{ invitationId }} {ERRORS} }} }}"""
BAN = "mutation($s: ID!, $u: ID!) { banMember(serverId: $s, userId: $u) { __typename } }"


async def test_invite_a_user_who_accepts_or_declines(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    dave, as_dave = await users.new("dav")
    server = await create_server(as_owner, "Club", "PRIVATE")

    async def invite(client: Any, user_id: str) -> dict[str, Any]:
        return (await client.data(INVITE_USER, {"s": server["id"], "u": user_id}))["inviteUser"]

    sent = await invite(as_owner, bob.user_id)
    assert sent["__typename"] == "Invitation"
    assert outcome(await invite(as_owner, bob.user_id)) == ("ConflictError", "ALREADY_EXISTS", "userId")
    assert outcome(await invite(as_owner, owner.user_id)) == ("ValidationError", "INVALID_INPUT", "userId")
    assert outcome(await invite(as_owner, "123456789")) == ("ValidationError", "INVALID_ID", "userId")
    unknown = str(int(bob.user_id) + 1)  # well-formed, nobody's
    assert outcome(await invite(as_owner, unknown)) == ("NotFoundError", "NOT_FOUND", "userId")
    assert outcome(await invite(as_carol, dave.user_id)) == ("NotFoundError", "NOT_FOUND", "serverId")

    # Only the invitee sees it, with the private server's name and size.
    mine = (await as_bob.data(MY_INVITATIONS))["myInvitations"]
    assert [(i["id"], i["inviter"], i["serverPreview"]) for i in mine] == [
        (sent["id"], {"id": owner.user_id}, {"id": server["id"], "name": "Club", "memberCount": 1})
    ]
    assert (await as_carol.data(MY_INVITATIONS))["myInvitations"] == []
    stolen = (await as_carol.data(ACCEPT, {"i": sent["id"]}))["acceptInvitation"]
    assert outcome(stolen) == ("NotFoundError", "NOT_FOUND", "id")

    joined = (await as_bob.data(ACCEPT, {"i": sent["id"]}))["acceptInvitation"]
    assert joined == {"__typename": "Server", "id": server["id"], "viewerIsMember": True}
    assert (await as_bob.data(MY_INVITATIONS))["myInvitations"] == []
    assert outcome(await invite(as_owner, bob.user_id)) == ("ConflictError", "ALREADY_MEMBER", "userId")

    # A plain member of a private server may not invite; with a role that allows it they may.
    assert outcome(await invite(as_bob, carol.user_id)) == ("PermissionError", "FORBIDDEN", "serverId")
    await grant_role(as_owner, server["id"], bob.user_id, Permission.CREATE_INVITE)
    to_carol = await invite(as_bob, carol.user_id)
    assert to_carol["__typename"] == "Invitation"
    declined = (await as_carol.data(DECLINE, {"i": to_carol["id"]}))["declineInvitation"]
    assert declined == {"__typename": "InvitationDeclined", "invitationId": to_carol["id"]}
    assert (await as_carol.data(MY_INVITATIONS))["myInvitations"] == []

    # A ban holds against an invitation sent before it.
    to_dave = await invite(as_owner, dave.user_id)
    await as_owner.data(BAN, {"s": server["id"], "u": dave.user_id})
    refused = (await as_dave.data(ACCEPT, {"i": to_dave["id"]}))["acceptInvitation"]
    assert outcome(refused) == ("PermissionError", "BANNED", "id")
