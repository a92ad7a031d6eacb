"""Roles, permission bits and channel overwrites as a client manages them, for the tests."""

from __future__ import annotations

from typing import Any

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient

ROLE_FIELDS = "__typename ... on Role { id name permissions position } ... on UserError { code field }"


DELETE_ROLE = f"mutation($id: ID!) {{ deleteRole(id: $id) {{ {ROLE_FIELDS} }} }}"


CREATE_ROLE = f"mutation($i: CreateRoleInput!) {{ createRole(input: $i) {{ {ROLE_FIELDS} }} }}"


UPDATE_ROLE = f"mutation($i: UpdateRoleInput!) {{ updateRole(input: $i) {{ {ROLE_FIELDS} }} }}"


ASSIGN_ROLE = f"mutation($i: MemberRoleInput!) {{ assignRole(input: $i) {{ {ROLE_FIELDS} }} }}"


SET_OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) {
  __typename ... on Channel { id permissionsSynced } ... on UserError { code field } } }"""


VIEW = str(int(Permission.VIEW_CHANNEL))


def bits(*permissions: Permission) -> str:
    value = Permission(0)
    for p in permissions:
        value |= p
    return str(int(value))


async def overwrite(
    client: GraphQLClient, channel_id: str, kind: str, target: str, **allow_deny: str
) -> dict:
    result = await client.data(
        SET_OVERWRITE, {"i": {"channelId": channel_id, "targetKind": kind, "targetId": target, **allow_deny}}
    )
    return result["setChannelOverwrite"]


async def role(client: GraphQLClient, query: str, **input_: Any) -> dict:
    data = await client.data(query, {"i": input_})
    return next(iter(data.values()))
