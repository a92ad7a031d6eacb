"""The servers subgraph: servers (tenants), membership, roles, invites and discovery."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from db.tenants import server_ids_of_user
from media.images import PictureKind
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    PICTURE_CODES,
    TEXT_CODES,
    ConflictError,
    DomainError,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    bad_user_input,
    error_types,
    not_found,
)
from subgraphs.kernel.federation import VIEWER_DEPENDENT, at_most, page_of
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy import attachment_files
from subgraphs.kernel.tenancy.permission_flags import permissions_from_input
from subgraphs.kernel.tenancy.permissions import IsAuthenticated, Permission
from subgraphs.kernel.web import live_signal, ratelimit, streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, run_in_transaction, signed_in_mutation
from subgraphs.kernel.web.pagination import page_info
from subgraphs.kernel.web.subgraph_schema import subgraph_schema
from subgraphs.kernel.web.uploads import commit_swap, store_upload
from subgraphs.servers import (
    administration,
    discovery,
    invitations,
    invites,
    live,
    membership,
    moderation,
    pictures,
    roles,
    service,
)
from subgraphs.servers.inputs import (
    CreateInviteInput,
    CreateRoleInput,
    CreateServerInput,
    MemberRoleInput,
    UpdateRoleInput,
    UpdateServerInput,
)
from subgraphs.servers.types import (
    AcceptInvitationResult,
    AcceptInviteResult,
    AuditActionType,
    AuditLogEntry,
    Ban,
    BanLifted,
    BanMemberResult,
    ChannelEvent,
    CreateServerResult,
    DeclineInvitationResult,
    DeleteServerResult,
    Invitation,
    InvitationDeclined,
    Invite,
    InvitePreview,
    InviteResult,
    InviteUserResult,
    JoinServerResult,
    KickMemberResult,
    LeaveServerResult,
    MemberEvent,
    MemberRemoved,
    MemberTimeout,
    Role,
    RoleEvent,
    RoleResult,
    Server,
    ServerConnection,
    ServerDeletedEvent,
    ServerDeletion,
    ServerEdge,
    ServerEvent,
    ServerLeft,
    ServersInfo,
    ServerUpdatedEvent,
    TimeoutMemberResult,
    TransferOwnershipResult,
    UnbanMemberResult,
    UpdateServerResult,
    User,
    visible_server,
)

# List bounds for the router's cost estimate (kernel/federation.py) where no rule caps a list: a user's
# servers are assumed to be at most 200 (Discord's limit with Nitro), a server's bans at most 1,000.
MAX_MY_SERVERS = 200
MAX_BANS = 1000


@strawberry.type
class Query:
    @strawberry.field(
        description="A server you can see (public, or one you are a member of); null otherwise."
    )
    async def server(self, info: ServersInfo, id: strawberry.ID) -> Server | None:
        return await visible_server(info, id_argument(str(id), "id"))

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The servers you are a member of, most recently joined first (direct conversations "
        "are listed by the friends context, not here).",
        directives=[at_most(MAX_MY_SERVERS)],
    )
    async def my_servers(self, info: ServersInfo) -> list[Server]:
        ctx = info.context
        assert ctx.user_id is not None
        server_ids = await server_ids_of_user(ctx.uow.directory(), ctx.user_id)
        rows = await ctx.loaders.servers.load_many(server_ids)
        return [Server.from_row(row) for row in rows if row is not None and row.kind == "SERVER"]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Invitations addressed to you, newest first.",
        directives=[at_most(invitations.MAX_PENDING_PER_USER)],
    )
    async def my_invitations(self, info: ServersInfo) -> list[Invitation]:
        ctx = info.context
        assert ctx.user_id is not None
        return [Invitation.from_row(row) for row in await invitations.my_invitations(ctx.uow, ctx.user_id)]

    @strawberry.field(
        description="What an invite code leads to, for anyone holding it (no sign-in needed); null for "
        "a code that does not exist."
    )
    async def invite(self, info: ServersInfo, code: str) -> InvitePreview | None:
        if not invites.is_code(code.strip()):
            raise bad_user_input("'code' is not an invite code.", "code")
        preview = await invites.preview_invite(info.context.uow, code.strip())
        return InvitePreview.from_preview(preview) if preview else None

    @strawberry.field(
        description="A server's usable invites, newest first; null unless you have Manage Server there.",
        directives=[at_most(invites.MAX_USABLE_INVITES)],
    )
    async def invites(self, info: ServersInfo, server_id: strawberry.ID) -> list[Invite] | None:
        ctx = info.context
        rows = await invites.list_invites(ctx.uow, ctx.user_id, id_argument(str(server_id), "serverId"))
        return None if rows is None else [Invite.from_row(row) for row in rows]

    @strawberry.field(
        description="A server's audit log, newest first: who changed what (settings, roles, channels, "
        "members, invites, webhooks), with before and after. Null unless you have View Audit Log there. "
        "Page back with `before` (an entry's id).",
        directives=[page_of("first", sized=None)],
    )
    async def audit_log(
        self,
        info: ServersInfo,
        server_id: strawberry.ID,
        first: int = 50,
        before: strawberry.ID | None = None,
        action: AuditActionType | None = None,  # type: ignore[valid-type]
        actor_id: strawberry.ID | None = None,
    ) -> list[AuditLogEntry] | None:
        if not 1 <= first <= 100:
            raise bad_user_input("'first' must be between 1 and 100.", "first")
        ctx = info.context
        found = await administration.read_audit_log(
            ctx.uow,
            ctx.user_id,
            id_argument(str(server_id), "serverId"),
            limit=first,
            before_id=id_argument(str(before), "before") if before is not None else None,
            action=action,
            actor_id=id_argument(str(actor_id), "actorId") if actor_id is not None else None,
        )
        return None if found is None else [AuditLogEntry.from_entry(entry) for entry in found]

    @strawberry.field(
        description="A server's bans, newest first; null unless you have Ban Members there.",
        directives=[at_most(MAX_BANS)],
    )
    async def bans(self, info: ServersInfo, server_id: strawberry.ID) -> list[Ban] | None:
        ctx = info.context
        rows = await moderation.list_bans(ctx.uow, ctx.user_id, id_argument(str(server_id), "serverId"))
        return None if rows is None else [Ban.from_row(row) for row in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Public servers whose name or description contains `query` (case-insensitive), names "
        "starting with it first. Private servers and direct conversations never appear.",
        directives=[page_of("first")],
    )
    async def discover_servers(
        self,
        info: ServersInfo,
        query: str = "",
        first: int | None = discovery.DEFAULT_PAGE,
        after: str | None = None,
    ) -> ServerConnection:
        ctx = info.context
        try:
            needle = discovery.clean_query(query)
        except DomainError as error:
            raise bad_user_input(error.message, "query") from error
        limit = discovery.DEFAULT_PAGE if first is None else first
        if not 1 <= limit <= discovery.MAX_PAGE:
            raise bad_user_input(f"'first' must be between 1 and {discovery.MAX_PAGE}.", "first")
        position = discovery.decode_cursor(after) if after else None
        if after and position is None:
            raise bad_user_input("'after' is not a valid cursor.", "after")
        page = await discovery.discover(
            ctx.uow,
            ctx.user_id,
            needle,
            first=limit,
            after=position,
            logical_shards=ctx.runtime.settings.logical_shards,
        )
        edges = []
        for found in page.found:
            # Read in the same pass: the page's memberCount and viewerIsMember need no further queries.
            ctx.loaders.member_counts.prime(found.server.id, found.member_count)
            ctx.loaders.viewer_is_member.prime(found.server.id, found.viewer_is_member)
            edges.append(
                ServerEdge(cursor=discovery.encode_cursor(found.position), node=Server.from_row(found.server))
            )
        return ServerConnection(
            edges=edges,
            page_info=page_info(
                [edge.cursor for edge in edges],
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
            ),
        )


@strawberry.type
class Mutation:
    @error_codes(*TEXT_CODES, ErrorCode.INVALID_INPUT)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Create a server; you own it. It starts with a text channel #general and a voice "
        "channel General.",
    )
    async def create_server(self, info: ServersInfo, input: CreateServerInput) -> CreateServerResult:
        data = service.NewServer(input.name, input.visibility.value, input.description)

        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.CREATE_SERVER, principal.user_id)
            row = await service.create_server(ctx.uow, principal, data, ctx.runtime.settings.logical_shards)
            return Server.from_row(row)

        return await signed_in_mutation(info, operation, error_types(ValidationError))

    @error_codes(
        *TEXT_CODES, ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Change a server's name, description or visibility (Manage Server).",
    )
    async def update_server(self, info: ServersInfo, input: UpdateServerInput) -> UpdateServerResult:
        changes = administration.ServerChanges(
            name=input.name,
            description=input.description,
            visibility=input.visibility.value if input.visibility is not None else None,
        )

        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            server_id = id_input(str(input.server_id), "serverId")
            row = await administration.update_server(ctx.uow, principal, server_id, changes)
            return Server.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.CONFIRMATION_MISMATCH, ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Destroy a server with all its channels, messages, roles, invites and files. Owner only; "
        "`confirmName` must be the server's name, exactly. Members' live streams end.",
    )
    async def delete_server(
        self, info: ServersInfo, server_id: strawberry.ID, confirm_name: str
    ) -> DeleteServerResult:
        files: list[str | None] = []
        purges: list[int] = []

        async def operation(ctx: BeepContext[Any], principal: Principal) -> ServerDeletion:
            target = id_input(str(server_id), "serverId")
            files.extend(await administration.delete_server(ctx.uow, principal, target, confirm_name))
            purges.append(await attachment_files.purge_server_later(ctx.uow, target))
            return ServerDeletion(server_id=strawberry.ID(str(target)))

        result = await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )
        if isinstance(result, ServerDeletion):  # committed: its files go too (attachments by scope)
            runtime = info.context.runtime
            await runtime.pictures.delete(*files)
            await attachment_files.run_jobs(runtime.database, runtime.attachments, purges)
        return result

    @error_codes(
        *PICTURE_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set a server's picture (Manage Server; GraphQL multipart upload): "
        f"{PictureKind.SERVER_PICTURE.describe()}",
    )
    async def set_server_picture(
        self, info: ServersInfo, server_id: strawberry.ID, file: Upload
    ) -> UpdateServerResult:
        return await _change_picture(info, server_id, "picture", PictureKind.SERVER_PICTURE, file)

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Remove a server's picture.")
    async def remove_server_picture(self, info: ServersInfo, server_id: strawberry.ID) -> UpdateServerResult:
        return await _change_picture(info, server_id, "picture", PictureKind.SERVER_PICTURE, None)

    @error_codes(
        *PICTURE_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Set a server's banner (Manage Server; GraphQL multipart upload): "
        f"{PictureKind.SERVER_BANNER.describe()}",
    )
    async def set_server_banner(
        self, info: ServersInfo, server_id: strawberry.ID, file: Upload
    ) -> UpdateServerResult:
        return await _change_picture(info, server_id, "banner", PictureKind.SERVER_BANNER, file)

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Remove a server's banner.")
    async def remove_server_banner(self, info: ServersInfo, server_id: strawberry.ID) -> UpdateServerResult:
        return await _change_picture(info, server_id, "banner", PictureKind.SERVER_BANNER, None)

    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.ALREADY_MEMBER,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Invite a user to a server directly: they see it in `myInvitations`. The same members "
        "may do this as may create invite links.",
    )
    async def invite_user(
        self, info: ServersInfo, server_id: strawberry.ID, user_id: strawberry.ID
    ) -> InviteUserResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Invitation:
            server = id_input(str(server_id), "serverId")
            invitee = id_input(str(user_id), "userId")
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.SEND_INVITATION, principal.user_id)
            return Invitation.from_row(await invitations.invite_user(ctx.uow, principal, server, invitee))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(ErrorCode.ALREADY_MEMBER, ErrorCode.BANNED, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Accept an invitation: join.")
    async def accept_invitation(self, info: ServersInfo, id: strawberry.ID) -> AcceptInvitationResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            invitation = id_input(str(id), "id")
            return Server.from_row(await invitations.accept_invitation(ctx.uow, principal, invitation))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Decline an invitation.")
    async def decline_invitation(self, info: ServersInfo, id: strawberry.ID) -> DeclineInvitationResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> InvitationDeclined:
            invitation = id_input(str(id), "id")
            await invitations.decline_invitation(ctx.uow, principal, invitation)
            return InvitationDeclined(invitation_id=strawberry.ID(str(invitation)))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.ALREADY_MEMBER, ErrorCode.BANNED, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Join a public server.")
    async def join_server(self, info: ServersInfo, server_id: strawberry.ID) -> JoinServerResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            row = await service.join_server(ctx.uow, principal, id_input(str(server_id), "serverId"))
            return Server.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ConflictError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Create an invite link. Public server: any member (Create Invite, which @everyone has "
        "by default). Private server: Manage Server, or Create Invite given by a role other than @everyone.",
    )
    async def create_invite(self, info: ServersInfo, input: CreateInviteInput) -> InviteResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Invite:
            data = invites.NewInvite(
                server_id=id_input(str(input.server_id), "serverId"),
                max_age_seconds=input.max_age_seconds,
                max_uses=input.max_uses,
            )
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.CREATE_INVITE, principal.user_id)
            return Invite.from_row(await invites.create_invite(ctx.uow, principal, data))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_FORMAT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Revoke an invite (its creator, or Manage Server). Revoking twice is harmless.",
    )
    async def revoke_invite(self, info: ServersInfo, code: str) -> InviteResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Invite:
            return Invite.from_row(await invites.revoke_invite(ctx.uow, principal, code))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.ALREADY_MEMBER,
        ErrorCode.BANNED,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Join a server (public or private) through an invite code.",
    )
    async def accept_invite(self, info: ServersInfo, code: str) -> AcceptInviteResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            return Server.from_row(await invites.accept_invite(ctx.uow, principal, code))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ConflictError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Leave a server; your roles there go too. The owner must transfer ownership first.",
    )
    async def leave_server(self, info: ServersInfo, server_id: strawberry.ID) -> LeaveServerResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> ServerLeft:
            parsed = id_input(str(server_id), "serverId")
            await membership.leave_server(ctx.uow, principal, parsed)
            return ServerLeft(server_id=strawberry.ID(str(parsed)))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Hand your server over to another member (owner only).",
    )
    async def transfer_ownership(
        self, info: ServersInfo, server_id: strawberry.ID, user_id: strawberry.ID
    ) -> TransferOwnershipResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Server:
            row = await membership.transfer_ownership(
                ctx.uow, principal, id_input(str(server_id), "serverId"), id_input(str(user_id), "userId")
            )
            return Server.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_PERMISSIONS,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Create a role (Manage Roles).")
    async def create_role(self, info: ServersInfo, input: CreateRoleInput) -> RoleResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Role:
            await ratelimit.enforce(ctx.runtime.rate_limiter, ratelimit.CREATE_ROLE, principal.user_id)
            server_id = id_input(str(input.server_id), "serverId")
            permissions = permissions_from_input(
                input.permissions, input.permission_flags, "permissions", "permissionFlags"
            )
            return Role.from_row(
                await roles.create_role(
                    ctx.uow, principal, server_id, input.name, permissions or Permission(0)
                )
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_PERMISSIONS,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Rename, re-permission or move a role (Manage Roles).",
    )
    async def update_role(self, info: ServersInfo, input: UpdateRoleInput) -> RoleResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Role:
            changes = roles.RoleChanges(
                name=input.name,
                permissions=permissions_from_input(
                    input.permissions or None, input.permission_flags, "permissions", "permissionFlags"
                ),
                position=input.position,
            )
            return Role.from_row(
                await roles.update_role(ctx.uow, principal, id_input(str(input.id), "id"), changes)
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Delete a role (Manage Roles).")
    async def delete_role(self, info: ServersInfo, id: strawberry.ID) -> RoleResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Role:
            return Role.from_row(await roles.delete_role(ctx.uow, principal, id_input(str(id), "id")))

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Give a member a role (Manage Roles)."
    )
    async def assign_role(self, info: ServersInfo, input: MemberRoleInput) -> RoleResult:
        return await _set_member_role(info, input, assigned=True)

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="Take a role from a member (Manage Roles)."
    )
    async def unassign_role(self, info: ServersInfo, input: MemberRoleInput) -> RoleResult:
        return await _set_member_role(info, input, assigned=False)

    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Remove a member (Kick Members; their highest role must be below yours). They may join "
        "again. To leave a server yourself, use leaveServer.",
    )
    async def kick_member(
        self, info: ServersInfo, server_id: strawberry.ID, user_id: strawberry.ID, reason: str | None = None
    ) -> KickMemberResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> MemberRemoved:
            parsed_server, parsed_user = (
                id_input(str(server_id), "serverId"),
                id_input(str(user_id), "userId"),
            )
            await moderation.kick_member(ctx.uow, principal, parsed_server, parsed_user, reason)
            return MemberRemoved(
                server_id=strawberry.ID(str(parsed_server)), user_id=strawberry.ID(str(parsed_user))
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Ban a user (Ban Members; a member's highest role must be below yours): they are "
        "removed and cannot join again until unbanned. reason: up to 512 characters.",
    )
    async def ban_member(
        self, info: ServersInfo, server_id: strawberry.ID, user_id: strawberry.ID, reason: str | None = None
    ) -> BanMemberResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Ban:
            row = await moderation.ban_member(
                ctx.uow,
                principal,
                id_input(str(server_id), "serverId"),
                id_input(str(user_id), "userId"),
                reason,
            )
            return Ban.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Lift a ban (Ban Members).")
    async def unban_member(
        self, info: ServersInfo, server_id: strawberry.ID, user_id: strawberry.ID
    ) -> UnbanMemberResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> BanLifted:
            parsed_server, parsed_user = (
                id_input(str(server_id), "serverId"),
                id_input(str(user_id), "userId"),
            )
            await moderation.unban_member(ctx.uow, principal, parsed_server, parsed_user)
            return BanLifted(
                server_id=strawberry.ID(str(parsed_server)), user_id=strawberry.ID(str(parsed_user))
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.ROLE_HIERARCHY,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Time a member out (Moderate Members; their highest role must be below yours): until "
        "then they may only view channels and read history. Give `until` or `seconds` (at most 28 days); "
        "neither, or 0 seconds, clears the timeout.",
    )
    async def timeout_member(
        self,
        info: ServersInfo,
        server_id: strawberry.ID,
        user_id: strawberry.ID,
        until: datetime | None = None,
        seconds: int | None = None,
    ) -> TimeoutMemberResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> MemberTimeout:
            parsed_server, parsed_user = (
                id_input(str(server_id), "serverId"),
                id_input(str(user_id), "userId"),
            )
            ends_at = moderation.check_timeout(until, seconds, datetime.now(UTC))
            ends = await moderation.timeout_member(ctx.uow, principal, parsed_server, parsed_user, ends_at)
            return MemberTimeout(
                server_id=strawberry.ID(str(parsed_server)),
                user_id=strawberry.ID(str(parsed_user)),
                until=ends,
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )


async def _change_picture(
    info: ServersInfo, server_id: strawberry.ID, slot: str, kind: PictureKind, file: Upload | None
) -> UpdateServerResult:
    """Check the caller may manage the server, store the new picture (if any), point the server at it,
    then delete the one it replaces."""
    ctx = info.context
    principal = ctx.require_principal()
    errors = error_types(ValidationError, NotFoundError, ForbiddenError)
    try:
        target = id_input(str(server_id), "serverId")
    except DomainError as error:  # outside any transaction here: shaped as run_in_transaction would
        return errors.shape(error)
    store = ctx.runtime.pictures
    if file is not None:
        # Refused before the file is read, so a non-manager cannot make the server store anything.
        refused = await run_in_transaction(
            ctx.uow, lambda: pictures.check_manager(ctx.uow, principal, target), errors
        )
        if refused is not None:
            return refused
    try:
        key = await store_upload(store, kind, pictures.scope_of(target), file, "file") if file else None
    except DomainError as error:
        return errors.shape(error)

    async def operation(replaced: list[str | None]) -> Server:
        row, previous = await pictures.set_server_picture(ctx.uow, principal, target, slot, key)
        replaced.append(previous)
        return Server.from_row(row)

    return await commit_swap(ctx.uow, store, key, operation, errors)


async def _set_member_role(info: ServersInfo, input: MemberRoleInput, *, assigned: bool) -> RoleResult:
    async def operation(ctx: BeepContext[Any], principal: Principal) -> Role:
        row = await roles.set_member_role(
            ctx.uow,
            principal,
            id_input(str(input.role_id), "roleId"),
            id_input(str(input.user_id), "userId"),
            assigned=assigned,
        )
        return Role.from_row(row)

    return await signed_in_mutation(
        info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
    )


def _event_view(view: live.View, server_id: int) -> ServerEvent:
    if isinstance(view, live.ServerChangedView):
        return ServerUpdatedEvent(server_id=strawberry.ID(str(view.server_id)))
    if isinstance(view, live.ServerDeletedView):
        return ServerDeletedEvent(server_id=strawberry.ID(str(view.server_id)))
    if isinstance(view, live.ChannelView):
        return ChannelEvent(channel_id=strawberry.ID(str(view.channel_id)), channel_change=view.change)
    if isinstance(view, live.RoleView):
        user = strawberry.ID(str(view.user_id)) if view.user_id is not None else None
        return RoleEvent(
            role_id=strawberry.ID(str(view.role_id)),
            role_change=view.change,
            user_id=user,
            server_id=server_id,
        )
    return MemberEvent(member_change=view.change, user_id=view.user_id)


@strawberry.type
class Subscription:
    # As messageEvents: no permission_classes (the router would mask their error); errors are raised
    # inside the stream, where their codes reach the client.
    @strawberry.subscription(
        directives=VIEWER_DEPENDENT,
        description="Live changes of a server you are a member of: its settings, roles, members, and the "
        "channels you can see (a channel hidden from you is never named). Ends with FORBIDDEN when you "
        "leave or are removed, after a ServerDeletedEvent when the server is deleted.",
    )
    @own_operation
    async def server_events(
        self, info: ServersInfo, server_id: strawberry.ID
    ) -> AsyncGenerator[ServerEvent, None]:
        ctx = info.context
        ctx.require_principal()
        target = id_argument(str(server_id), "serverId")
        if target is None:
            raise not_found("No such server.")
        stream = live.server_stream(ctx, target)
        async for view in streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal):
            yield live_signal.passing(view, lambda v: _event_view(v, target))


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Server, User],
)
