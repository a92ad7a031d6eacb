"""The webhooks subgraph: channel webhooks and bot access.

So far it lists a channel's webhooks for those who manage them; creating and executing webhooks comes
with the webhooks issue, on this table and schema.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.federation import Schema
from strawberry.types import Info

from subgraphs.kernel import access
from subgraphs.kernel.context import BeepContext
from subgraphs.kernel.errors import ERROR_TYPES, schema_extensions
from subgraphs.kernel.federation import REFERENCE_ONLY
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.permissions import IsAuthenticated, Permission
from subgraphs.webhooks import repository
from subgraphs.webhooks.loaders import WebhooksLoaders

WebhooksInfo = Info[BeepContext[WebhooksLoaders], None]


@strawberry.federation.type(keys=REFERENCE_ONLY)
class Channel:
    id: strawberry.ID


@strawberry.federation.type(keys=REFERENCE_ONLY)
class User:
    id: strawberry.ID


@strawberry.type(description="A channel webhook. Its secret token is shown once, at creation.")
class Webhook:
    id: strawberry.ID
    name: str
    created_at: datetime
    channel: Channel
    creator: User


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A channel's webhooks (Manage Webhooks); null if you cannot manage them.",
    )
    async def webhooks(self, info: WebhooksInfo, channel_id: strawberry.ID) -> list[Webhook] | None:
        ctx = info.context
        channel = id_argument(str(channel_id), "channelId")
        session = await ctx.uow.for_entity(channel)
        found = await access.channel_access(session, channel, ctx.user_id)
        if found is None or not found.can_view or not found.has(Permission.MANAGE_WEBHOOKS):
            return None
        return [
            Webhook(
                id=strawberry.ID(str(row.id)),
                name=row.name,
                created_at=row.created_at,
                channel=Channel(id=strawberry.ID(str(row.channel_id))),
                creator=User(id=strawberry.ID(str(row.creator_id))),
            )
            for row in await repository.webhooks_of_channel(session, channel)
        ]


schema = Schema(
    query=Query,
    types=[Channel, User, *ERROR_TYPES],
    extensions=schema_extensions(),
    federation_version="2.9",
)
