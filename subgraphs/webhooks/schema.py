"""The webhooks subgraph: channel webhooks (management, execution over GraphQL) and bot accounts.

The HTTP execute endpoint (`POST /webhooks/{id}/{token}`, Discord-compatible) is `http.py`, mounted on
this subgraph's process by `app.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from db.ids import parse_id
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    TEXT_CODES,
    AuthenticationError,
    BeepGraphQLError,
    ConflictError,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    TopLevelCode,
    ValidationError,
    error_types,
)
from subgraphs.kernel.federation import REFERENCE_ONLY, at_most
from subgraphs.kernel.ids import id_argument, id_input
from subgraphs.kernel.tenancy.permissions import IsAuthenticated
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.mutations import error_codes, run_in_transaction, signed_in_mutation
from subgraphs.kernel.web.subgraph_schema import subgraph_schema
from subgraphs.messages.api import PayloadProblem
from subgraphs.webhooks import bots, execute, service
from subgraphs.webhooks.loaders import WebhooksLoaders
from subgraphs.webhooks.models import BotRow, WebhookRow

WebhooksInfo = Info[BeepContext[WebhooksLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Server:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Message:
    id: strawberry.ID


def _id(value: int) -> strawberry.ID:
    return strawberry.ID(str(value))


@strawberry.type(description="A channel webhook. Its secret token is shown once (creation, regeneration).")
class Webhook:
    id: strawberry.ID
    name: str
    avatar_url: str | None
    created_at: datetime
    channel: Channel
    creator: User

    @classmethod
    def from_row(cls, row: WebhookRow) -> Webhook:
        return cls(
            id=_id(row.id),
            name=row.name,
            avatar_url=row.avatar_url,
            created_at=row.created_at,
            channel=Channel(id=_id(row.channel_id)),
            creator=User(id=_id(row.creator_id)),
        )


@strawberry.type(description="A webhook with its secret: shown this once. Keep the URL secret.")
class WebhookSecret:
    webhook: Webhook
    token: str
    url: str = strawberry.field(
        description="Where to POST Discord-shaped payloads: <public URL>/webhooks/{id}/{token}."
    )


@strawberry.type
class WebhookDeleted:
    id: strawberry.ID


@strawberry.type(description="A webhook posted a message.")
class WebhookExecution:
    message_id: strawberry.ID
    channel_id: strawberry.ID
    readable: strawberry.Private[bool]

    @strawberry.field(description="The message, if you may read the channel (null for anonymous callers).")
    def sent_message(self) -> Message | None:
        return Message(id=self.message_id) if self.readable else None


@strawberry.type(description="A bot account of a server: a member like any other, with a bot token.")
class Bot:
    id: strawberry.ID
    created_at: datetime
    has_token: bool = strawberry.field(description="False once its token was revoked.")
    server_id: strawberry.Private[int]

    @strawberry.field
    def user(self) -> User:
        return User(id=self.id)

    @strawberry.field
    def server(self) -> Server:
        return Server(id=_id(self.server_id))

    @classmethod
    def from_row(cls, row: BotRow) -> Bot:
        return cls(
            id=_id(row.user_id),
            created_at=row.created_at,
            has_token=row.token_hash is not None,
            server_id=row.server_id,
        )


@strawberry.type(description="A bot with its token, shown this once: exchange it with `botSignIn`.")
class BotSecret:
    bot: Bot
    token: str


@strawberry.input
class CreateWebhookInput:
    channel_id: strawberry.ID
    name: str = strawberry.field(description="1-80 characters.")
    avatar_url: str | None = strawberry.field(default=None, description="An http(s) image URL.")


@strawberry.input(description='Only what is given changes; avatarUrl "" removes the avatar.')
class UpdateWebhookInput:
    id: strawberry.ID
    name: str | None = None
    avatar_url: str | None = strawberry.UNSET
    channel_id: strawberry.ID | None = strawberry.field(
        default=None, description="Another text channel of the same server (Manage Webhooks there too)."
    )


@strawberry.input
class EmbedFooterInput:
    text: str
    icon_url: str | None = None


@strawberry.input
class EmbedAuthorInput:
    name: str
    url: str | None = None
    icon_url: str | None = None


@strawberry.input
class EmbedMediaInput:
    url: str


@strawberry.input
class EmbedFieldInput:
    name: str
    value: str
    inline: bool = False


@strawberry.input(description="Discord's embed, with Discord's limits (see the README's Webhooks section).")
class EmbedInput:
    title: str | None = None
    description: str | None = None
    url: str | None = None
    timestamp: datetime | None = None
    color: int | None = None
    footer: EmbedFooterInput | None = None
    image: EmbedMediaInput | None = None
    thumbnail: EmbedMediaInput | None = None
    author: EmbedAuthorInput | None = None
    fields: list[EmbedFieldInput] | None = None


@strawberry.input(description="Which mentions ping (Discord's allowed_mentions); absent: all of them.")
class AllowedMentionsInput:
    parse: list[str] = strawberry.field(default_factory=list, description='"users", "roles", "everyone".')
    users: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class ExecuteWebhookInput:
    content: str | None = None
    username: str | None = None
    avatar_url: str | None = None
    embeds: list[EmbedInput] | None = None
    allowed_mentions: AllowedMentionsInput | None = None


@strawberry.input
class CreateBotInput:
    server_id: strawberry.ID
    username: str = strawberry.field(description="2-32 letters, digits, '_' or '.'; unique.")


def _snake(value: Any) -> Any:
    """An input object as Discord's JSON (snake_case keys, no nulls)."""
    if isinstance(value, list):
        return [_snake(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__strawberry_definition__"):
        return {
            name: _snake(getattr(value, name))
            for name in vars(value)
            if getattr(value, name) is not None and getattr(value, name) is not strawberry.UNSET
        }
    return value


def _camel(part: str | int) -> str:
    head, *rest = str(part).split("_")
    return head + "".join(word.title() for word in rest)


CreateWebhookResult = Annotated[
    WebhookSecret | ValidationError | NotFoundError | ForbiddenError, strawberry.union("CreateWebhookResult")
]
UpdateWebhookResult = Annotated[
    Webhook | ValidationError | NotFoundError | ForbiddenError, strawberry.union("UpdateWebhookResult")
]
RegenerateWebhookTokenResult = Annotated[
    WebhookSecret | ValidationError | NotFoundError, strawberry.union("RegenerateWebhookTokenResult")
]
DeleteWebhookResult = Annotated[
    WebhookDeleted | ValidationError | NotFoundError, strawberry.union("DeleteWebhookResult")
]
ExecuteWebhookResult = Annotated[
    WebhookExecution | ValidationError | NotFoundError | AuthenticationError,
    strawberry.union("ExecuteWebhookResult"),
]
CreateBotResult = Annotated[
    BotSecret | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("CreateBotResult"),
]
BotTokenResult = Annotated[BotSecret | ValidationError | NotFoundError, strawberry.union("BotTokenResult")]
RevokeBotTokenResult = Annotated[
    Bot | ValidationError | NotFoundError, strawberry.union("RevokeBotTokenResult")
]


def _public_url(info: WebhooksInfo, row: WebhookRow, token: str) -> str:
    settings = info.context.runtime.settings
    return f"{settings.resolved_public_url}/webhooks/{row.id}/{token}"


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A channel's webhooks (Manage Webhooks); null if you cannot manage them.",
        directives=[at_most(service.MAX_PER_CHANNEL)],
    )
    async def webhooks(self, info: WebhooksInfo, channel_id: strawberry.ID) -> list[Webhook] | None:
        ctx = info.context
        channel = id_argument(str(channel_id), "channelId")
        if await service.managed_channel_or_none(ctx.uow, ctx.user_id, channel) is None:
            return None
        rows = await service.webhooks_of_channel(ctx.uow, channel)
        return [Webhook.from_row(row) for row in rows]

    @strawberry.field(description="A webhook you manage (Manage Webhooks in its channel); null otherwise.")
    async def webhook(self, info: WebhooksInfo, id: strawberry.ID) -> Webhook | None:
        ctx = info.context
        row = await service.managed_webhook(ctx.uow, ctx.user_id, id_argument(str(id), "id"))
        return Webhook.from_row(row) if row else None

    @strawberry.field(
        description="A server's bot accounts (Manage Server); null otherwise.",
        directives=[at_most(bots.MAX_BOTS_PER_SERVER)],
    )
    async def bots(self, info: WebhooksInfo, server_id: strawberry.ID) -> list[Bot] | None:
        ctx = info.context
        rows = await bots.bots_of(ctx.uow, ctx.user_id, id_argument(str(server_id), "serverId"))
        return None if rows is None else [Bot.from_row(row) for row in rows]


@strawberry.type
class Mutation:
    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(
        description="Create a webhook in a text channel (Manage Webhooks); its URL is shown once."
    )
    async def create_webhook(self, info: WebhooksInfo, input: CreateWebhookInput) -> CreateWebhookResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> WebhookSecret:
            created = await service.create_webhook(
                ctx.uow, principal, id_input(str(input.channel_id), "channelId"), input.name, input.avatar_url
            )
            return WebhookSecret(
                webhook=Webhook.from_row(created.row),
                token=created.token,
                url=_public_url(info, created.row, created.token),
            )

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(
        *TEXT_CODES,
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
    )
    @strawberry.mutation(description="Rename a webhook, change its avatar or move it to another channel.")
    async def update_webhook(self, info: WebhooksInfo, input: UpdateWebhookInput) -> UpdateWebhookResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Webhook:
            extra: dict[str, Any] = {}
            if input.avatar_url is not strawberry.UNSET:
                extra["avatar_url"] = input.avatar_url
            row = await service.update_webhook(
                ctx.uow,
                principal,
                id_input(str(input.id), "id"),
                name=input.name,
                channel_id=id_input(str(input.channel_id), "channelId") if input.channel_id else None,
                **extra,
            )
            return Webhook.from_row(row)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError)
        )

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="A new secret token; the old URL stops working at once.")
    async def regenerate_webhook_token(
        self, info: WebhooksInfo, id: strawberry.ID
    ) -> RegenerateWebhookTokenResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> WebhookSecret:
            done = await service.regenerate_token(ctx.uow, principal, id_input(str(id), "id"))
            return WebhookSecret(
                webhook=Webhook.from_row(done.row),
                token=done.token,
                url=_public_url(info, done.row, done.token),
            )

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="Delete a webhook; its URL then answers 404.")
    async def delete_webhook(self, info: WebhooksInfo, id: strawberry.ID) -> DeleteWebhookResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> WebhookDeleted:
            row = await service.delete_webhook(ctx.uow, principal, id_input(str(id), "id"))
            return WebhookDeleted(id=_id(row.id))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.INVALID_INPUT,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.REQUIRED,
        ErrorCode.TOO_LONG,
    )
    @strawberry.mutation(
        description="Post as a webhook, with its id and token (no account needed): the GraphQL twin of "
        "POST /webhooks/{id}/{token}. Over the webhook's rate limit: the top-level RATE_LIMITED error."
    )
    async def execute_webhook(
        self, info: WebhooksInfo, id: strawberry.ID, token: str, input: ExecuteWebhookInput
    ) -> ExecuteWebhookResult:
        ctx = info.context
        raw = _snake(input)
        if input.allowed_mentions is not None:
            raw["allowed_mentions"] = {
                "parse": list(input.allowed_mentions.parse),
                "users": [str(u) for u in input.allowed_mentions.users],
            }
        try:
            payload = execute.parse(raw)
        except PayloadProblem as problem:
            return ValidationError(
                code=problem.code, message=problem.message, field=".".join(_camel(p) for p in problem.path)
            )
        webhook_id = parse_id(str(id))  # a malformed id is refused like a wrong token: no hint

        async def operation() -> WebhookExecution:
            done = await execute.execute(
                ctx.uow,
                ctx.runtime.rate_limiter,
                ctx.runtime.settings,
                webhook_id,
                token,
                payload,
                want_message=False,
            )
            readable = await service.can_read(ctx.uow, ctx.user_id, done.message.channel_id)
            return WebhookExecution(
                message_id=_id(done.message.id), channel_id=_id(done.message.channel_id), readable=readable
            )

        try:
            return await run_in_transaction(
                ctx.uow, operation, error_types(ValidationError, NotFoundError, AuthenticationError)
            )
        except execute.RateLimited as limited:
            raise BeepGraphQLError(
                f"This webhook posts at most {limited.window.limit.describe()}. "
                f"Try again in {limited.retry_after} s.",
                TopLevelCode.RATE_LIMITED,
                retryAfter=limited.retry_after,
                limit=limited.window.limit.name,
            ) from None

    @error_codes(
        ErrorCode.FORBIDDEN,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.INVALID_ID,
        ErrorCode.LIMIT_REACHED,
        ErrorCode.NOT_FOUND,
        ErrorCode.USERNAME_TAKEN,
    )
    @strawberry.mutation(
        description="Create a bot account in a server (Manage Server); its token is shown once."
    )
    async def create_bot(self, info: WebhooksInfo, input: CreateBotInput) -> CreateBotResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> BotSecret:
            created = await bots.create_bot(
                ctx.uow, principal, id_input(str(input.server_id), "serverId"), input.username
            )
            return BotSecret(bot=Bot.from_row(created.row), token=created.token)

        return await signed_in_mutation(
            info, operation, error_types(ValidationError, NotFoundError, ForbiddenError, ConflictError)
        )

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="A new bot token (Manage Server); the old one stops working at once.")
    async def regenerate_bot_token(self, info: WebhooksInfo, bot_id: strawberry.ID) -> BotTokenResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> BotSecret:
            bot_user = id_input(str(bot_id), "botId")
            token = await bots.regenerate_token(ctx.uow, principal, bot_user)
            row = await bots.managed_bot(ctx.uow, principal, bot_user)
            return BotSecret(bot=Bot.from_row(row), token=token)

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))

    @error_codes(ErrorCode.FORBIDDEN, ErrorCode.INVALID_ID, ErrorCode.NOT_FOUND)
    @strawberry.mutation(description="Revoke a bot's token (Manage Server): it can no longer sign in.")
    async def revoke_bot_token(self, info: WebhooksInfo, bot_id: strawberry.ID) -> RevokeBotTokenResult:
        async def operation(ctx: BeepContext[Any], principal: Principal) -> Bot:
            return Bot.from_row(await bots.revoke_token(ctx.uow, principal, id_input(str(bot_id), "botId")))

        return await signed_in_mutation(info, operation, error_types(ValidationError, NotFoundError))


schema = subgraph_schema(
    query=Query,
    mutation=Mutation,
    types=[Channel, User, Server, Message],
)
