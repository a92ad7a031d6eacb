"""GraphQL types of the servers context."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from subgraphs.kernel.federation import REFERENCE_ONLY, VIEWER_DEPENDENT, at_most
from subgraphs.kernel.tenancy import audit
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permission_flags import FLAG_LIST, FLAGS_DESCRIPTION, PermissionFlag, flags_of
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.pagination import PageInfo
from subgraphs.servers import invites, live
from subgraphs.servers.loaders import ServersLoaders
from subgraphs.servers.models import BanRow, InvitationRow, InviteRow, RoleRow, ServerRow
from subgraphs.servers.roles import MAX_ROLES

ServersInfo = Info[BeepContext[ServersLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.enum
class ServerVisibility(enum.Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


@strawberry.type(description="A role: a named set of permissions given to members.")
class Role:
    id: strawberry.ID
    name: str
    permissions: str = strawberry.field(
        description="Decimal bitset (Discord's bit positions); by name: permissionFlags."
    )
    position: int = strawberry.field(description="Higher ranks above lower; @everyone is 0.")
    is_everyone: bool

    @strawberry.field(description=FLAGS_DESCRIPTION, directives=[FLAG_LIST])
    def permission_flags(self) -> list[PermissionFlag]:
        return flags_of(int(self.permissions))

    @classmethod
    def from_row(cls, row: RoleRow) -> Role:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            permissions=str(row.permissions),
            position=row.position,
            is_everyone=row.id == row.server_id,
        )


@strawberry.federation.type(keys=["id"], description="A community: a tenant with its members and channels.")
class Server:
    id: strawberry.ID
    name: str
    description: str
    visibility: ServerVisibility
    created_at: datetime
    owner_id: strawberry.Private[int]
    picture_key: strawberry.Private[str | None] = None
    banner_key: strawberry.Private[str | None] = None

    @strawberry.field(
        description="The server's picture: a signed URL that works for about 15 minutes (WebP, within "
        "512x512); null when none is set."
    )
    def picture_url(self, info: ServersInfo) -> str | None:
        return info.context.runtime.pictures.url(self.picture_key)

    @strawberry.field(
        description="The server's banner: a signed URL that works for about 15 minutes (WebP, within "
        "1920x1080); null when none is set."
    )
    def banner_url(self, info: ServersInfo) -> str | None:
        return info.context.runtime.pictures.url(self.banner_key)

    @strawberry.field
    def owner(self) -> User:
        return User(id=strawberry.ID(str(self.owner_id)))

    @strawberry.field(directives=VIEWER_DEPENDENT, description="Whether the signed-in user is a member.")
    async def viewer_is_member(self, info: ServersInfo) -> bool:
        return await info.context.loaders.viewer_is_member.load(int(self.id))

    @strawberry.field(
        directives=VIEWER_DEPENDENT,
        description="Your server-wide permissions as a decimal bitset ('0' if not a member); by name: "
        "myPermissionFlags.",
    )
    async def my_permissions(self, info: ServersInfo) -> str:
        found = await info.context.loaders.server_access.load(int(self.id))
        return str(int(found.permissions)) if found else "0"

    @strawberry.field(directives=[*VIEWER_DEPENDENT, FLAG_LIST], description=FLAGS_DESCRIPTION)
    async def my_permission_flags(self, info: ServersInfo) -> list[PermissionFlag]:
        found = await info.context.loaders.server_access.load(int(self.id))
        return flags_of(int(found.permissions)) if found else []

    @strawberry.field(
        description="Until when a moderator has timed you out here (you may read but not act); null when "
        "you are not timed out."
    )
    async def my_timeout_until(self, info: ServersInfo) -> datetime | None:
        found = await info.context.loaders.server_access.load(int(self.id))
        return found.timed_out_until if found else None

    @strawberry.field(description="How many members the server has.")
    async def member_count(self, info: ServersInfo) -> int:
        return await info.context.loaders.member_counts.load(int(self.id))

    @strawberry.field(
        description="How many members are connected now, as others see it (MYSTERIOUS counts as away)."
    )
    async def online_count(self, info: ServersInfo) -> int:
        loaders = info.context.loaders
        return await loaders.online_counts(info.context.runtime.presence).load(int(self.id))

    @strawberry.field(
        description="The roles, highest first, @everyone last (members only).",
        directives=[at_most(MAX_ROLES)],
    )
    async def roles(self, info: ServersInfo) -> list[Role]:
        if not await info.context.loaders.viewer_is_member.load(int(self.id)):
            return []
        return [Role.from_row(row) for row in await info.context.loaders.server_roles.load(int(self.id))]

    @classmethod
    def from_row(cls, row: ServerRow) -> Server:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            visibility=ServerVisibility(row.visibility),
            created_at=row.created_at,
            owner_id=row.owner_id,
            picture_key=row.picture_key,
            banner_key=row.banner_key,
        )

    @classmethod
    async def resolve_reference(cls, info: ServersInfo, id: strawberry.ID) -> Server | None:
        return await visible_server(info, parse_id(str(id)))


async def visible_server(info: ServersInfo, server_id: int | None) -> Server | None:
    """The server if the caller may see it: public ones to anyone, private ones to members only."""
    if server_id is None:
        return None
    loaders = info.context.loaders
    row = await loaders.servers.load(server_id)
    if row is None:
        return None
    if row.visibility != "PUBLIC" and not await loaders.viewer_is_member.load(server_id):
        return None
    return Server.from_row(row)


@strawberry.type(description="An invite link to a server, as its creator and the server's managers see it.")
class Invite:
    # Not `code`: results put Invite beside UserError, whose `code` is an ErrorCode, and GraphQL refuses one
    # response key with two types in a selection.
    invite_code: str = strawberry.field(description="What the link carries; anyone holding it may join.")
    created_at: datetime
    expires_at: datetime | None = strawberry.field(description="null: it never expires.")
    max_uses: int = strawberry.field(description="0: unlimited.")
    uses: int
    revoked: bool
    valid: bool = strawberry.field(description="Whether it can still be accepted.")
    server_id: strawberry.Private[int]
    creator_id: strawberry.Private[int]

    @strawberry.field
    async def server(self, info: ServersInfo) -> Server | None:
        return await visible_server(info, self.server_id)

    @strawberry.field
    def creator(self) -> User:
        return User(id=strawberry.ID(str(self.creator_id)))

    @classmethod
    def from_row(cls, row: InviteRow) -> Invite:
        return cls(
            invite_code=row.code,
            created_at=row.created_at,
            expires_at=row.expires_at,
            max_uses=row.max_uses,
            uses=row.uses,
            revoked=row.revoked_at is not None,
            valid=invites.invite_state(row, datetime.now(UTC)) is invites.InviteState.USABLE,
            server_id=row.server_id,
            creator_id=row.creator_id,
        )


@strawberry.type(
    description="What anyone holding an invite code sees before accepting it. A dead invite (revoked, "
    "expired or used up) names nothing: serverName and memberCount are null."
)
class InvitePreview:
    invite_code: str
    valid: bool = strawberry.field(description="Whether it can still be accepted.")
    expires_at: datetime | None = strawberry.field(description="null: it never expires.")
    server_name: str | None
    member_count: int | None

    @classmethod
    def from_preview(cls, preview: invites.InvitePreview) -> InvitePreview:
        return cls(
            invite_code=preview.code,
            valid=preview.valid,
            expires_at=preview.expires_at,
            server_name=preview.server_name,
            member_count=preview.member_count,
        )


@strawberry.type(description="A user banned from a server: they cannot join it again until unbanned.")
class Ban:
    server_id: strawberry.ID
    reason: str | None
    created_at: datetime
    user_id: strawberry.Private[int]
    banned_by_id: strawberry.Private[int]

    @strawberry.field
    def user(self) -> User:
        return User(id=strawberry.ID(str(self.user_id)))

    @strawberry.field(description="The moderator who banned them.")
    def banned_by(self) -> User:
        return User(id=strawberry.ID(str(self.banned_by_id)))

    @classmethod
    def from_row(cls, row: BanRow) -> Ban:
        return cls(
            server_id=strawberry.ID(str(row.server_id)),
            reason=row.reason,
            created_at=row.created_at,
            user_id=row.user_id,
            banned_by_id=row.banned_by,
        )


@strawberry.type(description="A member was removed from a server (kicked); they may join again.")
class MemberRemoved:
    server_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.type(description="A ban was lifted: the user may join again.")
class BanLifted:
    server_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.type(description="A member's timeout was set or cleared.")
class MemberTimeout:
    server_id: strawberry.ID
    user_id: strawberry.ID
    until: datetime | None = strawberry.field(description="null: the timeout was cleared.")


@strawberry.type
class ServerEdge:
    cursor: str
    node: Server


@strawberry.type(description="A page of discovered servers, best matches first.")
class ServerConnection:
    edges: list[ServerEdge]
    page_info: PageInfo


@strawberry.type(description="You left the server.")
class ServerLeft:
    server_id: strawberry.ID


@strawberry.type(description="The server was deleted with everything in it.")
class ServerDeletion:
    server_id: strawberry.ID


@strawberry.type(description="One field's value before and after a change (JSON-encoded values).")
class AuditChange:
    field: str
    before: str | None = strawberry.field(description="JSON; null when the field was absent.")
    after: str | None = strawberry.field(description="JSON; null when the field was absent.")


AuditActionType = strawberry.enum(AuditAction, name="AuditAction")


MAX_AUDIT_CHANGES = 50  # fields one change can touch (a server's settings are the most: about 10)


@strawberry.type(description="Who changed what in a server, and when.")
class AuditLogEntry:
    id: strawberry.ID
    action: AuditActionType  # type: ignore[valid-type]
    target_kind: str = strawberry.field(description="SERVER, ROLE, MEMBER, CHANNEL, INVITE or WEBHOOK.")
    target_id: strawberry.ID | None
    changes: list[AuditChange] = strawberry.field(directives=[at_most(MAX_AUDIT_CHANGES)])
    context: str = strawberry.field(description="JSON object: what identifies the change beyond its target.")
    reason: str | None
    created_at: datetime
    actor_id: strawberry.Private[int]

    @strawberry.field(description="Who made the change.")
    def actor(self) -> User:
        return User(id=strawberry.ID(str(self.actor_id)))

    @classmethod
    def from_entry(cls, entry: audit.AuditEntry) -> AuditLogEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            action=entry.action,
            target_kind=entry.target_kind,
            target_id=strawberry.ID(str(entry.target_id)) if entry.target_id is not None else None,
            changes=[
                AuditChange(
                    field=c.field,
                    before=None if c.before is None else json.dumps(c.before),
                    after=None if c.after is None else json.dumps(c.after),
                )
                for c in entry.changes
            ],
            context=json.dumps(entry.context),
            reason=entry.reason,
            created_at=entry.created_at,
            actor_id=entry.actor_id,
        )


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID


ChannelChangeType = strawberry.enum(live.ChannelChange, name="ChannelChange")
MemberChangeType = strawberry.enum(live.MemberChange, name="MemberChange")


@strawberry.type(description="The server's name, description, visibility or owner changed.")
class ServerUpdatedEvent:
    server_id: strawberry.ID

    @strawberry.field(description="The server as it is now.")
    async def server(self, info: ServersInfo) -> Server | None:
        return await visible_server(info, int(self.server_id))


@strawberry.type(description="The server was deleted; the stream ends after this event.")
class ServerDeletedEvent:
    server_id: strawberry.ID


@strawberry.type(
    description="A channel you can see was created or changed, became visible to you (ADDED), or was "
    "deleted or hidden from you (REMOVED). Channels you cannot see never appear."
)
class ChannelEvent:
    channel_id: strawberry.ID
    channel_change: ChannelChangeType  # type: ignore[valid-type]

    @strawberry.field(description="The channel as it is now; null when REMOVED.")
    def channel(self) -> Channel | None:
        return None if self.channel_change is live.ChannelChange.REMOVED else Channel(id=self.channel_id)


@strawberry.type(description="A role was created, edited or deleted, or given to or taken from a member.")
class RoleEvent:
    role_id: strawberry.ID
    role_change: str = strawberry.field(description="CREATED, UPDATED, DELETED, ASSIGNED or UNASSIGNED.")
    user_id: strawberry.ID | None = strawberry.field(description="The member, for ASSIGNED and UNASSIGNED.")
    server_id: strawberry.Private[int]

    @strawberry.field(description="The role as it is now; null once deleted.")
    async def role(self, info: ServersInfo) -> Role | None:
        roles = await info.context.loaders.server_roles.load(self.server_id)
        return next((Role.from_row(r) for r in roles if r.id == int(self.role_id)), None)


@strawberry.type(description="Someone joined or left the server, or was kicked or banned.")
class MemberEvent:
    member_change: MemberChangeType  # type: ignore[valid-type]
    user_id: strawberry.Private[int]

    @strawberry.field
    def user(self) -> User:
        return User(id=strawberry.ID(str(self.user_id)))


ServerEvent = Annotated[
    ServerUpdatedEvent | ServerDeletedEvent | ChannelEvent | RoleEvent | MemberEvent,
    strawberry.union("ServerEvent"),
]


@strawberry.type(description="An invitation to join a server, addressed to you.")
class Invitation:
    id: strawberry.ID
    created_at: datetime
    server_id: strawberry.Private[int]
    inviter_id: strawberry.Private[int]

    @strawberry.field(description="Who invited you.")
    def inviter(self) -> User:
        return User(id=strawberry.ID(str(self.inviter_id)))

    @strawberry.field(description="The server's name and size (shown even for a private server).")
    async def server_preview(self, info: ServersInfo) -> InvitedServer | None:
        row = await info.context.loaders.servers.load(self.server_id)
        if row is None:
            return None
        count = await info.context.loaders.member_counts.load(self.server_id)
        return InvitedServer(id=strawberry.ID(str(row.id)), name=row.name, member_count=count)

    @classmethod
    def from_row(cls, row: InvitationRow) -> Invitation:
        return cls(
            id=strawberry.ID(str(row.id)),
            created_at=row.created_at,
            server_id=row.server_id,
            inviter_id=row.inviter_id,
        )


@strawberry.type(description="What an invitee sees of the server before joining.")
class InvitedServer:
    id: strawberry.ID
    name: str
    member_count: int


@strawberry.type(description="You declined the invitation.")
class InvitationDeclined:
    invitation_id: strawberry.ID


InviteUserResult = Annotated[
    Invitation | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("InviteUserResult"),
]
AcceptInvitationResult = Annotated[
    Server | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("AcceptInvitationResult"),
]
DeclineInvitationResult = Annotated[
    InvitationDeclined | ValidationError | NotFoundError, strawberry.union("DeclineInvitationResult")
]

CreateServerResult = Annotated[Server | ValidationError, strawberry.union("CreateServerResult")]
JoinServerResult = Annotated[
    Server | ValidationError | NotFoundError | ConflictError | ForbiddenError,
    strawberry.union("JoinServerResult"),
]
InviteResult = Annotated[
    Invite | ValidationError | NotFoundError | ForbiddenError, strawberry.union("InviteResult")
]
AcceptInviteResult = Annotated[
    Server | ValidationError | NotFoundError | ConflictError | ForbiddenError,
    strawberry.union("AcceptInviteResult"),
]
LeaveServerResult = Annotated[
    ServerLeft | ValidationError | NotFoundError | ForbiddenError, strawberry.union("LeaveServerResult")
]
TransferOwnershipResult = Annotated[
    Server | ValidationError | NotFoundError | ForbiddenError, strawberry.union("TransferOwnershipResult")
]
RoleResult = Annotated[
    Role | ValidationError | NotFoundError | ForbiddenError, strawberry.union("RoleResult")
]
KickMemberResult = Annotated[
    MemberRemoved | ValidationError | NotFoundError | ForbiddenError, strawberry.union("KickMemberResult")
]
BanMemberResult = Annotated[
    Ban | ValidationError | NotFoundError | ForbiddenError, strawberry.union("BanMemberResult")
]
UnbanMemberResult = Annotated[
    BanLifted | ValidationError | NotFoundError | ForbiddenError, strawberry.union("UnbanMemberResult")
]
UpdateServerResult = Annotated[
    Server | ValidationError | NotFoundError | ForbiddenError, strawberry.union("UpdateServerResult")
]
DeleteServerResult = Annotated[
    ServerDeletion | ValidationError | NotFoundError | ForbiddenError, strawberry.union("DeleteServerResult")
]
TimeoutMemberResult = Annotated[
    MemberTimeout | ValidationError | NotFoundError | ForbiddenError,
    strawberry.union("TimeoutMemberResult"),
]
