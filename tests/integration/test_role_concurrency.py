"""Two admins editing roles at once cannot corrupt the permission state: many rounds of concurrent role
edits through the router (create, rename, re-permission, reorder, delete, assign, unassign — often on the
same roles), then the invariants, read from the API and straight from the tenant's shard."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from db.ids import shard_of
from subgraphs.kernel.tenancy.permissions import MemberGrant, Permission, base_permissions
from subgraphs.servers.models import MemberRoleRow, MemberRow, RoleRow
from subgraphs.servers.roles import MAX_ROLES
from tests.harness.client import GraphQLClient
from tests.harness.relayed import database_of
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, Account, create_server, sign_up
from tests.integration.role_flows import (
    ASSIGN_ROLE,
    CREATE_ROLE,
    DELETE_ROLE,
    ROLE_FIELDS,
    UPDATE_ROLE,
    bits,
    role,
)

ROUNDS = 25
OPS_PER_ADMIN = 3
TYPED = {"Role", "ValidationError", "NotFoundError", "PermissionError", "ConflictError"}
UNASSIGN_ROLE = f"mutation($i: MemberRoleInput!) {{ unassignRole(input: $i) {{ {ROLE_FIELDS} }} }}"
ROLES = "query($s: ID!) { server(id: $s) { roles { id name permissions position isEveryone } } }"
MINE = "query($s: ID!) { server(id: $s) { myPermissions } }"
POOL = (
    Permission.SEND_MESSAGES,
    Permission.MANAGE_MESSAGES,
    Permission.KICK_MEMBERS,
    Permission.MANAGE_CHANNELS,
    Permission.ATTACH_FILES,
    Permission.MENTION_EVERYONE,
    Permission.VIEW_AUDIT_LOG,
    Permission.ADMINISTRATOR,
)


@dataclass
class Guild:
    anonymous: GraphQLClient
    server_id: str
    owner: Account
    admins: list[Account]
    members: list[Account]
    assigned: set[tuple[str, str]] = field(default_factory=set)  # (user id, role id) as we were told

    def as_(self, account: Account) -> GraphQLClient:
        return self.anonymous.with_token(account.token)

    async def roles(self) -> list[dict[str, Any]]:
        return list((await self.as_(self.owner).data(ROLES, {"s": self.server_id}))["server"]["roles"])


async def setup(stack: Stack) -> Guild:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    accounts = [await sign_up(anonymous, prefix) for prefix in ("adm", "adm", "mem", "mem", "mem", "mem")]
    server = await create_server(anonymous.with_token(owner.token), "Contested")
    guild = Guild(anonymous, server["id"], owner, accounts[:2], accounts[2:])
    for account in accounts:
        joined = await guild.as_(account).data(JOIN_SERVER, {"id": server["id"]})
        assert joined["joinServer"]["__typename"] == "Server"
    # One role for both admins, created first: every later role is made below it.
    admins = await role(
        guild.as_(owner),
        CREATE_ROLE,
        serverId=server["id"],
        name="Admins",
        permissions=bits(Permission.ADMINISTRATOR),
    )
    for admin in guild.admins:
        await role(guild.as_(owner), ASSIGN_ROLE, roleId=admins["id"], userId=admin.user_id)
    guild.assigned |= {(admin.user_id, admins["id"]) for admin in guild.admins}
    return guild


# --- one round -------------------------------------------------------------------------------------------


@dataclass
class Op:
    name: str
    run: Callable[[], Awaitable[dict[str, Any]]]
    pair: tuple[str, str] | None = None  # assign/unassign: (user id, role id)
    assigns: bool = False


def plan(guild: Guild, rng: random.Random, roles: list[dict[str, Any]], admin: Account) -> list[Op]:
    """Random edits by one admin, drawn from the same roles the other admin draws from."""
    client = guild.as_(admin)
    editable = [r for r in roles if not r["isEveryone"] and r["name"] not in ("Admins", "contested")]
    ops: list[Op] = []
    for _ in range(OPS_PER_ADMIN):
        perms = bits(*rng.sample(POOL, rng.randint(0, 3)))
        kind = rng.choice(["create", "update", "move", "move", "delete", "assign", "unassign"])
        if kind == "create" or not editable:
            ops.append(
                op(client, "createRole", CREATE_ROLE, serverId=guild.server_id, name="r", permissions=perms)
            )
            continue
        target = rng.choice(editable)
        if kind == "update":
            ops.append(op(client, "updateRole", UPDATE_ROLE, id=target["id"], permissions=perms, name="u"))
        elif kind == "move":
            position = rng.randint(1, max(1, len(roles) - 2))
            ops.append(op(client, "updateRole position", UPDATE_ROLE, id=target["id"], position=position))
        elif kind == "delete":
            ops.append(Op("deleteRole", lambda c=client, i=target["id"]: c.data(DELETE_ROLE, {"id": i})))
        else:
            user = rng.choice(guild.members)
            query = ASSIGN_ROLE if kind == "assign" else UNASSIGN_ROLE
            assigned = op(client, kind, query, roleId=target["id"], userId=user.user_id)
            assigned.pair, assigned.assigns = (user.user_id, target["id"]), kind == "assign"
            ops.append(assigned)
    return ops


def op(client: GraphQLClient, label: str, query: str, /, **input_: Any) -> Op:
    return Op(label, lambda: client.data(query, {"i": input_}))


async def play_round(guild: Guild, rng: random.Random) -> None:
    roles = await guild.roles()
    ops = [o for admin in guild.admins for o in plan(guild, rng, roles, admin)]
    # A member/role pair is touched once a round, so what it ends as is known from the answers.
    seen: set[tuple[str, str]] = set()
    ops = [o for o in ops if o.pair is None or not (o.pair in seen or seen.add(o.pair))]
    # Both admins also re-permission the same role at once: it ends as one of the two, not a mixture.
    contested = next((r for r in roles if r["name"] == "contested"), None)
    values = (bits(Permission.KICK_MEMBERS, Permission.BAN_MEMBERS), bits(Permission.MANAGE_MESSAGES))
    if contested is not None:
        ops += [
            op(guild.as_(admin), "updateRole same role", UPDATE_ROLE, id=contested["id"], permissions=value)
            for admin, value in zip(guild.admins, values, strict=True)
        ]
    rng.shuffle(ops)
    answers = await asyncio.gather(*(o.run() for o in ops))
    for o, data in zip(ops, answers, strict=True):
        payload = next(iter(data.values()))
        assert payload["__typename"] in TYPED, (o.name, payload)
        if o.pair is not None and payload["__typename"] == "Role":
            (guild.assigned.add if o.assigns else guild.assigned.discard)(o.pair)
    if contested is not None:
        final = next(r for r in await guild.roles() if r["id"] == contested["id"])
        assert final["permissions"] in values


# --- invariants ------------------------------------------------------------------------------------------


async def check_invariants(guild: Guild) -> None:
    roles = await guild.roles()
    positions = [r["position"] for r in roles]
    assert positions == sorted(range(len(roles)), reverse=True), (
        positions
    )  # unique, contiguous, highest first
    assert roles[-1]["isEveryone"] and roles[-1]["position"] == 0 and roles[-1]["id"] == guild.server_id
    assert len(roles) <= MAX_ROLES
    existing = {r["id"]: Permission(int(r["permissions"])) for r in roles}
    guild.assigned = {(user, r) for user, r in guild.assigned if r in existing}  # deleted roles took theirs
    for account in [*guild.admins, *guild.members]:
        mine = await guild.as_(account).data(MINE, {"s": guild.server_id})
        grant = MemberGrant(
            is_owner=False,
            is_member=True,
            everyone=existing[guild.server_id],
            roles=tuple(existing[r] for user, r in guild.assigned if user == account.user_id),
        )
        assert mine["server"]["myPermissions"] == str(int(base_permissions(grant))), account.username


async def check_shard(stack: Stack, guild: Guild) -> None:
    """Straight from the tenant's shard: what the API says is all there is."""
    server_id = int(guild.server_id)
    database = database_of(stack)
    try:
        async with database.shard_session(shard_of(server_id)) as session:
            positions = list(
                await session.scalars(
                    select(RoleRow.position).where(RoleRow.server_id == server_id).order_by(RoleRow.position)
                )
            )
            assert positions == list(range(len(positions)))
            dangling = await session.scalar(
                select(func.count())
                .select_from(MemberRoleRow)
                .where(
                    MemberRoleRow.server_id == server_id,
                    MemberRoleRow.role_id.not_in(select(RoleRow.id).where(RoleRow.server_id == server_id)),
                )
            )
            assert dangling == 0
            rows = await session.execute(
                select(MemberRoleRow.user_id, MemberRoleRow.role_id)
                .join(
                    MemberRow,
                    (MemberRow.server_id == MemberRoleRow.server_id)
                    & (MemberRow.user_id == MemberRoleRow.user_id),
                )
                .where(MemberRoleRow.server_id == server_id)
            )
            assert {(str(u), str(r)) for u, r in rows} == guild.assigned
    finally:
        await database.dispose()


async def test_two_admins_editing_roles_at_once(stack: Stack) -> None:
    guild = await setup(stack)
    contested = await role(guild.as_(guild.owner), CREATE_ROLE, serverId=guild.server_id, name="contested")
    assert contested["__typename"] == "Role"
    rng = random.Random(f"roles-{stack.mode}")
    for _ in range(ROUNDS):
        await play_round(guild, rng)
        await check_invariants(guild)
    await check_shard(stack, guild)
