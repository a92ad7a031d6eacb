"""Input types of the servers context."""

from __future__ import annotations

import strawberry

from subgraphs.kernel.tenancy.permission_flags import PermissionFlag
from subgraphs.servers.types import ServerVisibility


@strawberry.input
class CreateServerInput:
    name: str = strawberry.field(description="2-100 characters.")
    visibility: ServerVisibility = ServerVisibility.PRIVATE
    description: str | None = strawberry.field(default=None, description="Up to 1,000 characters.")


@strawberry.input
class CreateInviteInput:
    server_id: strawberry.ID
    max_age_seconds: int | None = strawberry.field(
        default=7 * 24 * 3600,
        description="Seconds until it expires: 1-604800 (7 days, the default); 0 or null: never.",
    )
    max_uses: int = strawberry.field(default=0, description="0 (unlimited, the default) to 100.")


@strawberry.input
class CreateRoleInput:
    server_id: strawberry.ID
    name: str = strawberry.field(description="1-100 characters.")
    permissions: str | None = strawberry.field(
        default=None, description="Decimal permission bitset (Discord's); none: '0'."
    )
    permission_flags: list[PermissionFlag] | None = strawberry.field(
        default=None, description="The permissions by name, instead of `permissions`."
    )


@strawberry.input
class UpdateRoleInput:
    id: strawberry.ID
    name: str | None = None
    permissions: str | None = strawberry.field(default=None, description="Decimal permission bitset.")
    permission_flags: list[PermissionFlag] | None = strawberry.field(
        default=None, description="The permissions by name, instead of `permissions`."
    )
    position: int | None = strawberry.field(default=None, description="1 (just above @everyone) and up.")


@strawberry.input
class MemberRoleInput:
    role_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.input(description="What to change; omitted fields stay as they are.")
class UpdateServerInput:
    server_id: strawberry.ID
    name: str | None = strawberry.field(default=None, description="2-100 characters.")
    description: str | None = strawberry.field(default=None, description="Up to 1,000 characters.")
    visibility: ServerVisibility | None = None
