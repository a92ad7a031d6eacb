"""Nothing secret leaves through what people read about each other: every type reachable from `me`,
`user(id)`, `searchUsers` and `myServers` (where server owners and, later, member lists live) has no
secret field, and querying every field there never returns another user's e-mail, a password hash, a
TOTP secret or someone else's token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, create_channel, create_server, sign_up
from tests.integration.identity_helpers import (
    BEGIN_2FA,
    CONFIRM_2FA,
    UPDATE_PROFILE,
    code_at,
    fresh_totp_window,
)

ROOTS = ("me", "user", "searchUsers", "myServers")
SECRET_NAME = re.compile(r"password|hash|secret|totp|recovery|refresh|token", re.IGNORECASE)
TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
INTROSPECTION = f"""{{ __schema {{ queryType {{ name }} types {{ name kind
  fields {{ name args {{ name type {{ kind }} defaultValue }} type {{ {TYPE_REF} }} }} }} }} }}"""
MAX_DEPTH = 4


def _named(type_ref: dict[str, Any]) -> dict[str, Any]:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref


def _callable(field: dict[str, Any], given: set[str]) -> bool:
    return all(a["name"] in given or a["type"]["kind"] != "NON_NULL" for a in field["args"])


class Schema:
    def __init__(self, introspection: dict[str, Any]) -> None:
        schema = introspection["__schema"]
        self.types = {t["name"]: t for t in schema["types"]}
        self.query = self.types[schema["queryType"]["name"]]

    def reachable(self, roots: tuple[str, ...]) -> set[str]:
        seen: set[str] = set()
        todo = [_named(f["type"])["name"] for f in self.query["fields"] if f["name"] in roots]
        while todo:
            name = todo.pop()
            if name in seen or name.startswith("__"):
                continue
            seen.add(name)
            todo += [_named(f["type"])["name"] for f in self.types[name].get("fields") or []]
        return seen

    def selection(self, type_name: str, depth: int) -> str:
        """Every field without required arguments, objects followed `depth` levels down."""
        parts = ["__typename"]
        for field in self.types[type_name].get("fields") or []:
            if not _callable(field, set()) or field["name"].startswith("_"):
                continue
            target = _named(field["type"])
            if target["kind"] in ("SCALAR", "ENUM"):
                parts.append(field["name"])
            elif target["kind"] == "OBJECT" and depth > 0:
                parts.append(f"{field['name']} {{ {self.selection(target['name'], depth - 1)} }}")
        return " ".join(parts)


@pytest.fixture
def audit_router(stack: Stack) -> Iterator[str]:
    """The stack behind one more router, without the cost limit: the audit selects every field four
    levels deep, priced (as a worst case) in the billions; the subgraphs' own limits still hold."""
    env = next(iter(stack.router_envs.values()))
    url = stack.start_router(
        "router-audit",
        stack.subgraph_urls,
        env["BEEP_JWKS_URL"],
        env["BEEP_JWT_ISSUER"],
        extra_env={"BEEP_ROUTER_MAX_COST": "0"},
    )
    yield url
    stack.kill("router-audit")


async def test_no_secret_field_or_foreign_email_is_reachable(stack: Stack, audit_router: str) -> None:
    await fresh_totp_window()
    client = GraphQLClient(stack.router_url)
    viewer, other = await sign_up(client, "viewer"), await sign_up(client, "other")
    other_client = client.with_token(other.token)
    server = await create_server(other_client)
    await create_channel(other_client, server["id"])
    assert (await client.with_token(viewer.token).data(JOIN_SERVER, {"id": server["id"]}))["joinServer"]["id"]
    # The other user has two-factor on: its secret and recovery codes must appear nowhere.
    setup = (await other_client.data(BEGIN_2FA))["beginTwoFactorSetup"]
    confirmed = (await other_client.data(CONFIRM_2FA, {"c": code_at(setup["secret"], 0)}))["confirmTwoFactor"]
    # Both have chosen their devices: a private setting, read back by its owner only.
    devices = {}
    for person, who in ((viewer, "viewer"), (other, "other")):
        devices[who] = {"audioInputDeviceId": f"mic-of-{who}", "videoInputDeviceId": f"cam-of-{who}"}
        changed = await client.with_token(person.token).data(UPDATE_PROFILE, {"input": devices[who]})
        assert changed["updateProfile"]["user"]["audioInputDeviceId"] == f"mic-of-{who}"

    schema = Schema(await client.with_token(viewer.token).data(INTROSPECTION))
    reachable = schema.reachable(ROOTS)
    assert {"User", "Server"} <= reachable
    secret_fields = [
        f"{name}.{field['name']}"
        for name in reachable
        for field in schema.types[name].get("fields") or []
        if SECRET_NAME.search(field["name"])
    ]
    assert secret_fields == []

    user_fields = schema.selection("User", MAX_DEPTH - 1)
    server_fields = schema.selection("Server", MAX_DEPTH - 1)
    document = f"""query($id: ID!, $prefix: String!) {{
      me {{ {user_fields} }}
      user(id: $id) {{ {user_fields} }}
      searchUsers(prefix: $prefix) {{ edges {{ node {{ {user_fields} }} }} }}
      myServers {{ {server_fields} }}
    }}"""
    for reader, subject in ((viewer, other), (other, viewer)):
        result = await GraphQLClient(audit_router, reader.token).execute(
            document, {"id": subject.user_id, "prefix": subject.username}
        )
        assert not result.errors, result.errors
        text = json.dumps(result.data)
        assert reader.email in text  # the query reached the fields that hold e-mail addresses
        mine, theirs = ("viewer", "other") if reader is viewer else ("other", "viewer")
        assert f"mic-of-{mine}" in text and f"cam-of-{mine}" in text  # and those holding devices
        assert result.data is not None and result.data["user"]["username"] == subject.username
        forbidden = [subject.email, subject.password, subject.token, subject.refresh_token, "$argon2"]
        forbidden += [setup["secret"], *confirmed["recoveryCodes"], reader.password, reader.refresh_token]
        forbidden += list(devices[theirs].values())
        assert [secret for secret in forbidden if secret and secret in text] == []
