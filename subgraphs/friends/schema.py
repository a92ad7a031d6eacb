"""The friends subgraph: friend requests, friendships, blocks and direct conversations.

Thin resolvers: parse the input, call friends/service.py or friends/conversations.py, map the result.
People are federated User references: the users subgraph resolves their username, display name,
picture and connection status (presence, visible to friends).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from subgraphs.friends import conversations, groups, repository, service
from subgraphs.friends import events as friend_events
from subgraphs.friends.events import (
    DirectConversationOpened,
    FriendRequestSent,
    FriendshipEnded,
    FriendshipStarted,
    GroupConversationChanged,
    UserBlocked,
    UserUnblocked,
)
from subgraphs.friends.loaders import FriendsLoaders
from subgraphs.friends.models import DirectConversationRow, FriendRequestRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    TEXT_CODES,
    ConflictError,
    ErrorCode,
    ErrorTypes,
    ForbiddenError,
    NotFoundError,
    UserError,
    ValidationError,
    error_types,
)
from subgraphs.kernel.events.catalogue import Event, topic_for_user
from subgraphs.kernel.federation import REFERENCE_ONLY, VIEWER_DEPENDENT, at_most
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy import attachment_files
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web import ratelimit, streams
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.mutations import error_codes, signed_in_mutation
from subgraphs.kernel.web.subgraph_schema import subgraph_schema

FriendsInfo = Info[BeepContext[FriendsLoaders], None]
T = TypeVar("T")
E = TypeVar("E", bound=UserError)


def _ref_id(value: int) -> strawberry.ID:
    return strawberry.ID(str(value))


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Server:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Message:
    id: strawberry.ID


@strawberry.enum(description="Whether you sent a request or received it.")
class RequestDirection(enum.Enum):
    INCOMING = "INCOMING"
    OUTGOING = "OUTGOING"


@strawberry.type(description="A friend request waiting for an answer.")
class FriendRequest:
    id: strawberry.ID
    direction: RequestDirection
    user: User = strawberry.field(description="The other person: who asked you, or whom you asked.")
    created_at: datetime

    @staticmethod
    def of(row: FriendRequestRow, viewer_id: int) -> FriendRequest:
        incoming = row.recipient_id == viewer_id
        return FriendRequest(
            id=_ref_id(row.id),
            direction=RequestDirection.INCOMING if incoming else RequestDirection.OUTGOING,
            user=User(id=_ref_id(row.sender_id if incoming else row.recipient_id)),
            created_at=row.created_at,
        )


@strawberry.type(description="You and `user` are friends.")
class Friendship:
    user: User


@strawberry.type
class FriendRequestRemoved:
    request_id: strawberry.ID


@strawberry.type
class FriendRemoved:
    user_id: strawberry.ID


@strawberry.type
class BlockChange:
    user_id: strawberry.ID
    blocked: bool


@strawberry.interface(
    description="A conversation of yours: a direct one (DirectConversation) or a group (GroupConversation). "
    "Send, read and follow its messages with the usual messages API on `channel`."
)
class Conversation:
    id: strawberry.ID = strawberry.field(description="The conversation's server id.")
    server: Server
    channel: Channel
    last_message: Message | None
    unread_count: int = strawberry.field(description="Messages of others you have not read (up to 1,000).")
    mention_count: int


@strawberry.type(
    description="A direct conversation with a friend: a server of kind DM with one text channel; send, "
    "read and follow its messages with the usual messages API on `channel`."
)
class DirectConversation(Conversation):
    user: User = strawberry.field(description="The friend you talk with.")

    @staticmethod
    def of(view: conversations.ConversationView) -> DirectConversation:
        return DirectConversation(
            id=_ref_id(view.row.server_id),
            server=Server(id=_ref_id(view.row.server_id)),
            channel=Channel(id=_ref_id(view.row.channel_id)),
            user=User(id=_ref_id(view.other_id)),
            last_message=Message(id=_ref_id(view.last_message_id)) if view.last_message_id else None,
            unread_count=view.unread_count,
            mention_count=view.mention_count,
        )

    @staticmethod
    def opened(row: DirectConversationRow, viewer_id: int) -> DirectConversation:
        other = row.user_high_id if row.user_low_id == viewer_id else row.user_low_id
        return DirectConversation.of(conversations.ConversationView(row, other, None, 0, 0))


@strawberry.type(
    description=f"A group conversation of {groups.MIN_OTHERS + 1} to {groups.MAX_PARTICIPANTS} people: a "
    "server of kind GROUP_DM with one text channel; send, read and follow its messages with the usual "
    "messages API on `channel`. Never listed as a server."
)
class GroupConversation(Conversation):
    name: str | None = strawberry.field(description="Its name; null: show the participants' names.")
    owner: User = strawberry.field(
        description="Who may remove participants; when they leave, the longest-standing participant."
    )
    participants: list[User] = strawberry.field(
        description="Everyone in it, you too, longest-standing first.",
        directives=[at_most(groups.MAX_PARTICIPANTS)],
    )

    @staticmethod
    def of(view: groups.GroupView) -> GroupConversation:
        row = view.row
        return GroupConversation(
            id=_ref_id(row.server_id),
            server=Server(id=_ref_id(row.server_id)),
            channel=Channel(id=_ref_id(row.channel_id)),
            last_message=Message(id=_ref_id(view.last_message_id)) if view.last_message_id else None,
            unread_count=view.unread_count,
            mention_count=view.mention_count,
            name=row.name,
            owner=User(id=_ref_id(row.owner_id)),
            participants=[User(id=_ref_id(i)) for i in view.participant_ids],
        )


@strawberry.type
class GroupConversationLeft:
    conversation_id: strawberry.ID


@strawberry.input
class CreateGroupConversationInput:
    user_ids: list[strawberry.ID] = strawberry.field(
        description=f"{groups.MIN_OTHERS} to {groups.MAX_PARTICIPANTS - 1} of your friends (you are added)."
    )
    name: str | None = strawberry.field(
        default=None,
        description=f"{groups.NAME_LENGTH[0]}-{groups.NAME_LENGTH[1]} characters; null: no name.",
    )


@strawberry.enum(description="What happened to one of your relationships.")
class FriendEventKind(enum.Enum):
    REQUEST_RECEIVED = "REQUEST_RECEIVED"
    REQUEST_SENT = "REQUEST_SENT"
    REQUEST_DECLINED = "REQUEST_DECLINED"
    REQUEST_CANCELLED = "REQUEST_CANCELLED"
    FRIEND_ADDED = "FRIEND_ADDED"
    FRIEND_REMOVED = "FRIEND_REMOVED"
    BLOCKED = "BLOCKED"
    UNBLOCKED = "UNBLOCKED"
    CONVERSATION_OPENED = "CONVERSATION_OPENED"
    GROUP_CREATED = "GROUP_CREATED"
    GROUP_PARTICIPANT_ADDED = "GROUP_PARTICIPANT_ADDED"
    GROUP_PARTICIPANT_REMOVED = "GROUP_PARTICIPANT_REMOVED"
    GROUP_RENAMED = "GROUP_RENAMED"
    GROUP_OWNER_CHANGED = "GROUP_OWNER_CHANGED"


@strawberry.type(description="A change of your friends, requests, blocks or conversations.")
class FriendEvent:
    kind: FriendEventKind
    user: User = strawberry.field(
        description="The other person; for a group: its creator (GROUP_CREATED), the participant added or "
        "removed (you, when it is you: GROUP_PARTICIPANT_REMOVED about you means you lost access), who "
        "renamed it, its new owner."
    )
    request_id: strawberry.ID | None = None
    conversation_id: strawberry.ID | None = None
    channel_id: strawberry.ID | None = None
    actor: User | None = strawberry.field(default=None, description="For a group: who made the change.")
    name: str | None = strawberry.field(default=None, description="For a group: its name after the change.")


def _other(me: int, a: int, b: int) -> User:
    return User(id=_ref_id(b if a == me else a))


def friend_event(event: Event, me: int) -> FriendEvent | None:
    """The subscriber's view of an event of their `user:` topic; None for events of other kinds."""
    if isinstance(event, FriendRequestSent):
        kind = FriendEventKind.REQUEST_RECEIVED if event.recipient_id == me else FriendEventKind.REQUEST_SENT
        return FriendEvent(
            kind=kind,
            user=_other(me, event.sender_id, event.recipient_id),
            request_id=_ref_id(event.request_id),
        )
    if isinstance(event, friend_events.FriendRequestRemoved):
        kind = (
            FriendEventKind.REQUEST_DECLINED
            if event.reason == "DECLINED"
            else FriendEventKind.REQUEST_CANCELLED
        )
        return FriendEvent(
            kind=kind,
            user=_other(me, event.sender_id, event.recipient_id),
            request_id=_ref_id(event.request_id),
        )
    if isinstance(event, FriendshipStarted):
        return FriendEvent(
            kind=FriendEventKind.FRIEND_ADDED, user=_other(me, event.requester_id, event.accepter_id)
        )
    if isinstance(event, FriendshipEnded):
        return FriendEvent(kind=FriendEventKind.FRIEND_REMOVED, user=_other(me, event.by_id, event.other_id))
    if isinstance(event, UserBlocked) and event.blocker_id == me:
        return FriendEvent(kind=FriendEventKind.BLOCKED, user=User(id=_ref_id(event.blocked_id)))
    if isinstance(event, UserUnblocked) and event.blocker_id == me:
        return FriendEvent(kind=FriendEventKind.UNBLOCKED, user=User(id=_ref_id(event.blocked_id)))
    if isinstance(event, DirectConversationOpened):
        return FriendEvent(
            kind=FriendEventKind.CONVERSATION_OPENED,
            user=_other(me, event.user_low_id, event.user_high_id),
            conversation_id=_ref_id(event.server_id),
            channel_id=_ref_id(event.channel_id),
        )
    if isinstance(event, GroupConversationChanged):
        return FriendEvent(
            kind=_GROUP_KINDS[event.change],
            user=User(id=_ref_id(event.user_id)),
            conversation_id=_ref_id(event.server_id),
            channel_id=_ref_id(event.channel_id),
            actor=User(id=_ref_id(event.actor_id)),
            name=event.name,
        )
    return None


_GROUP_KINDS = {
    "CREATED": FriendEventKind.GROUP_CREATED,
    "ADDED": FriendEventKind.GROUP_PARTICIPANT_ADDED,
    "REMOVED": FriendEventKind.GROUP_PARTICIPANT_REMOVED,
    "RENAMED": FriendEventKind.GROUP_RENAMED,
    "OWNER_CHANGED": FriendEventKind.GROUP_OWNER_CHANGED,
}


SendFriendRequestResult = Annotated[
    FriendRequest | Friendship | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("SendFriendRequestResult"),
]
AcceptFriendRequestResult = Annotated[
    Friendship | ValidationError | NotFoundError, strawberry.union("AcceptFriendRequestResult")
]
RemoveFriendRequestResult = Annotated[
    FriendRequestRemoved | ValidationError | NotFoundError, strawberry.union("RemoveFriendRequestResult")
]
RemoveFriendResult = Annotated[
    FriendRemoved | ValidationError | NotFoundError, strawberry.union("RemoveFriendResult")
]
BlockResult = Annotated[BlockChange | ValidationError | NotFoundError, strawberry.union("BlockResult")]
OpenDirectMessageResult = Annotated[
    DirectConversation | ValidationError | ForbiddenError, strawberry.union("OpenDirectMessageResult")
]
GroupConversationResult = Annotated[
    GroupConversation | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("GroupConversationResult"),
]
LeaveGroupConversationResult = Annotated[
    GroupConversationLeft | ValidationError | NotFoundError, strawberry.union("LeaveGroupConversationResult")
]


# List bounds for the router's cost estimate (kernel/federation.py) where no rule caps a list: requests
# received, users blocked and conversations are each assumed to be at most 1,000 (friends are capped at
# 1,000, requests sent at 100).
MAX_INCOMING_REQUESTS = 1000
MAX_BLOCKED = 1000
MAX_CONVERSATIONS = 1000


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your friends, most recent first (their `connectionStatus` is their presence).",
        directives=[at_most(service.MAX_FRIENDS)],
    )
    async def friends(self, info: FriendsInfo) -> list[User]:
        principal = info.context.require_principal()
        ids = await repository.friend_ids(info.context.uow.directory(), principal.user_id)
        return [User(id=_ref_id(i)) for i in ids]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Requests sent to you, newest first.",
        directives=[at_most(MAX_INCOMING_REQUESTS)],
    )
    async def incoming_friend_requests(self, info: FriendsInfo) -> list[FriendRequest]:
        me = info.context.require_principal().user_id
        rows = await repository.incoming_requests(info.context.uow.directory(), me)
        return [FriendRequest.of(row, me) for row in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Requests you sent, newest first.",
        directives=[at_most(service.MAX_OUTGOING_REQUESTS)],
    )
    async def outgoing_friend_requests(self, info: FriendsInfo) -> list[FriendRequest]:
        me = info.context.require_principal().user_id
        rows = await repository.outgoing_requests(info.context.uow.directory(), me)
        return [FriendRequest.of(row, me) for row in rows]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Users you blocked, latest first.",
        directives=[at_most(MAX_BLOCKED)],
    )
    async def blocked_users(self, info: FriendsInfo) -> list[User]:
        me = info.context.require_principal().user_id
        return [User(id=_ref_id(i)) for i in await repository.blocked_ids(info.context.uow.directory(), me)]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your direct conversations, the one with the newest message first, with unread counts.",
        directives=[at_most(MAX_CONVERSATIONS)],
    )
    async def direct_conversations(self, info: FriendsInfo) -> list[DirectConversation]:
        me = info.context.require_principal().user_id
        return [
            DirectConversation.of(view) for view in await conversations.my_conversations(info.context.uow, me)
        ]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="All your conversations, direct and group, latest activity first (the newest message, "
        "or the opening of an empty one), with unread counts.",
        directives=[at_most(MAX_CONVERSATIONS)],
    )
    async def conversations(self, info: FriendsInfo) -> list[Conversation]:
        me = info.context.require_principal().user_id
        uow = info.context.uow
        found: list[tuple[int, Conversation]] = []
        for view in await conversations.my_conversations(uow, me):
            found.append((view.last_message_id or view.row.server_id, DirectConversation.of(view)))
        for group in await groups.my_groups(uow, me):
            found.append((group.last_message_id or group.row.server_id, GroupConversation.of(group)))
        found.sort(key=lambda pair: pair[0], reverse=True)  # ids are time-ordered
        return [conversation for _, conversation in found]

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A group conversation you take part in; null for any other id.",
    )
    async def group_conversation(self, info: FriendsInfo, id: strawberry.ID) -> GroupConversation | None:
        me = info.context.require_principal().user_id
        view = await groups.group_of(info.context.uow, me, id_argument(str(id), "id"))
        return GroupConversation.of(view) if view is not None else None


async def _with_purges(
    info: FriendsInfo,
    user_id: strawberry.ID,
    end: Callable[[UnitOfWork, Principal, int], Awaitable[list[int]]],
    result: Callable[[strawberry.ID], T],
    errors: ErrorTypes[E],
    field: str = "userId",
) -> T | E:
    """Run `end` (which may erase a conversation) in one transaction; once committed, the attachment
    purge jobs it recorded run (the sweeper retries one that fails)."""
    jobs: list[int] = []

    async def operation(ctx: BeepContext[Any], principal: Principal) -> T:
        target = id_input(str(user_id), field)
        jobs.extend(await end(ctx.uow, principal, target))
        return result(_ref_id(target))

    outcome = await signed_in_mutation(info, operation, errors)
    if jobs and not isinstance(outcome, UserError):
        runtime = info.context.runtime
        await attachment_files.run_jobs(runtime.database, runtime.attachments, jobs)
    return outcome


async def _changing_group(
    info: FriendsInfo,
    conversation_id: strawberry.ID,
    change: Callable[[UnitOfWork, Principal, int], Awaitable[groups.GroupView]],
) -> GroupConversation | ValidationError | NotFoundError | ForbiddenError | ConflictError:
    """Run a change of a group in one transaction; the group as it is after it. Other ID inputs are parsed
    inside `change`, so a malformed one is a typed INVALID_ID too."""

    async def operation(ctx: BeepContext[Any], principal: Principal) -> GroupConversation:
        group = id_input(str(conversation_id), "conversationId")
        return GroupConversation.of(await change(ctx.uow, principal, group))

    errors = error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
    return await signed_in_mutation(info, operation, errors)


@strawberry.type
class Mutation:
    @error_codes(
        ErrorCode.ALREADY_EXISTS,
        ErrorCode.ALREADY_FRIENDS,
        ErrorCode.BLOCKED,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Ask someone to be your friend, by username. If they already asked you, you are friends "
        f"at once (the result is then a Friendship). At most {service.SEND_FRIEND_REQUEST.describe()}, "
        f"{service.MAX_OUTGOING_REQUESTS} waiting and {service.MAX_FRIENDS} friends.",
    )
    async def send_friend_request(self, info: FriendsInfo, username: str) -> SendFriendRequestResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> FriendRequest | Friendship:
            await ratelimit.enforce(ctx.runtime.rate_limiter, service.SEND_FRIEND_REQUEST, principal.user_id)
            result = await service.send_request(ctx.uow, principal, username)
            if isinstance(result, service.Befriended):
                return Friendship(user=User(id=_ref_id(result.friend_id)))
            return FriendRequest.of(result, principal.user_id)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.LIMIT_REACHED, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Accept a request sent to you.")
    async def accept_friend_request(self, info: FriendsInfo, id: strawberry.ID) -> AcceptFriendRequestResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Friendship:
            friend = await service.accept_request(ctx.uow, principal, id_input(str(id), "id"))
            return Friendship(user=User(id=_ref_id(friend)))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Decline a request sent to you.")
    async def decline_friend_request(self, info: FriendsInfo, id: strawberry.ID) -> RemoveFriendRequestResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> FriendRequestRemoved:
            request_id = id_input(str(id), "id")
            await service.decline_request(ctx.uow, principal, request_id)
            return FriendRequestRemoved(request_id=_ref_id(request_id))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Withdraw a request you sent.")
    async def cancel_friend_request(self, info: FriendsInfo, id: strawberry.ID) -> RemoveFriendRequestResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> FriendRequestRemoved:
            request_id = id_input(str(id), "id")
            await service.cancel_request(ctx.uow, principal, request_id)
            return FriendRequestRemoved(request_id=_ref_id(request_id))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FRIENDS)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="End a friendship. Your direct conversation is erased for both of you: its messages, "
        "files and search entries.",
    )
    async def remove_friend(self, info: FriendsInfo, user_id: strawberry.ID) -> RemoveFriendResult:
        return await _with_purges(
            info,
            user_id,
            service.remove_friend,
            lambda target: FriendRemoved(user_id=target),
            error_types(ValidationError, NotFoundError),
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Block a user: no friend requests either way, no direct messages (a friendship ends, "
        "erasing your conversation), and their messages come with `authorBlocked` for you.",
    )
    async def block_user(self, info: FriendsInfo, user_id: strawberry.ID) -> BlockResult:
        return await _with_purges(
            info,
            user_id,
            service.block,
            lambda target: BlockChange(user_id=target, blocked=True),
            error_types(ValidationError, NotFoundError),
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Unblock a user you blocked.")
    async def unblock_user(self, info: FriendsInfo, user_id: strawberry.ID) -> BlockResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> BlockChange:
            target = id_input(str(user_id), "userId")
            await service.unblock(ctx.uow, principal, target)
            return BlockChange(user_id=_ref_id(target), blocked=False)

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.INVALID_INPUT, ErrorCode.NOT_FRIENDS)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Your direct conversation with a friend, created on first use (idempotent).",
    )
    async def open_direct_message(self, info: FriendsInfo, user_id: strawberry.ID) -> OpenDirectMessageResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> DirectConversation:
            friend = id_input(str(user_id), "userId")
            row = await conversations.open_conversation(
                ctx.uow, principal, friend, ctx.runtime.settings.logical_shards
            )
            return DirectConversation.opened(row, principal.user_id)

        return await signed_in_mutation(info, operation, error_types(ValidationError, ForbiddenError))

    @error_codes(
        *TEXT_CODES,
        ErrorCode.DUPLICATE_ID,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_FRIENDS,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description=f"Start a group conversation with {groups.MIN_OTHERS} to {groups.MAX_PARTICIPANTS - 1} "
        f"of your friends; you own it. At most {groups.CREATE_GROUP.describe()}.",
    )
    async def create_group_conversation(
        self, info: FriendsInfo, input: CreateGroupConversationInput
    ) -> GroupConversationResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> GroupConversation:
            user_ids = [id_input(str(u), "userIds") for u in input.user_ids]
            await ratelimit.enforce(ctx.runtime.rate_limiter, groups.CREATE_GROUP, principal.user_id)
            view = await groups.create(
                ctx.uow, principal, user_ids, input.name, ctx.runtime.settings.logical_shards
            )
            return GroupConversation.of(view)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(
        ErrorCode.ALREADY_MEMBER,
        ErrorCode.DUPLICATE_ID,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_FRIENDS,
        ErrorCode.REQUIRED,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description=f"Add friends of yours to a group you take part in (at most {groups.MAX_PARTICIPANTS} "
        "participants in all).",
    )
    async def add_group_participants(
        self, info: FriendsInfo, conversation_id: strawberry.ID, user_ids: list[strawberry.ID]
    ) -> GroupConversationResult:
        return await _changing_group(
            info,
            conversation_id,
            lambda uow, principal, group: groups.add(
                uow, principal, group, [id_input(str(u), "userIds") for u in user_ids]
            ),
        )

    @error_codes(
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_OWNER,
        ErrorCode.NOT_PARTICIPANT,
    )
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="The group's owner removes a participant, who loses access at once.",
    )
    async def remove_group_participant(
        self, info: FriendsInfo, conversation_id: strawberry.ID, user_id: strawberry.ID
    ) -> GroupConversationResult:
        return await _changing_group(
            info,
            conversation_id,
            lambda uow, principal, group: groups.remove(
                uow, principal, group, id_input(str(user_id), "userId")
            ),
        )

    @error_codes(*TEXT_CODES, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Name a group you take part in (null: no name).",
    )
    async def rename_group_conversation(
        self, info: FriendsInfo, conversation_id: strawberry.ID, name: str | None = None
    ) -> GroupConversationResult:
        return await _changing_group(
            info,
            conversation_id,
            lambda uow, principal, group: groups.rename(uow, principal, group, name),
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Leave a group. If you own it, the longest-standing participant does next; the last one "
        "out erases it (its messages, files and search entries).",
    )
    async def leave_group_conversation(
        self, info: FriendsInfo, conversation_id: strawberry.ID
    ) -> LeaveGroupConversationResult:
        return await _with_purges(
            info,
            conversation_id,
            groups.leave,
            lambda target: GroupConversationLeft(conversation_id=target),
            error_types(ValidationError, NotFoundError),
            field="conversationId",
        )


@strawberry.type
class Subscription:
    # As messageEvents: no permission_classes (the router would mask their error).
    @strawberry.subscription(
        directives=VIEWER_DEPENDENT,
        description="Live changes of your own friends, requests, blocks and conversations (only yours: the "
        "stream is the signed-in user's).",
    )
    @own_operation
    async def friend_events(self, info: FriendsInfo) -> AsyncGenerator[FriendEvent, None]:
        ctx = info.context
        me = ctx.require_principal().user_id
        stream = streams.LiveStream(
            topics=(topic_for_user(me),), render=streams.mapped(lambda event: friend_event(event, me))
        )
        async for view in streams.follow(stream, ctx.runtime.bus, ctx.release, signal=ctx.live_signal):
            yield view


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[User, Server, Channel, Message, DirectConversation, GroupConversation],
)
