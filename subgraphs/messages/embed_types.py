"""GraphQL shapes of what webhooks add to a message: who posted it, and its embeds (Discord's fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from subgraphs.kernel.federation import at_most
from subgraphs.messages.embeds import MAX_FIELDS


@strawberry.type(description="The webhook that posted a message, as it was shown when posted.")
class WebhookAuthor:
    id: strawberry.ID = strawberry.field(description="The webhook's id.")
    name: str = strawberry.field(description="The webhook's name, or the `username` override of the post.")
    avatar_url: str | None = strawberry.field(description="The webhook's avatar or the post's override.")
    bot: bool = strawberry.field(default=True, description="Always true: a webhook is not a person.")


@strawberry.type
class EmbedFooter:
    text: str
    icon_url: str | None = None


@strawberry.type
class EmbedAuthor:
    name: str
    url: str | None = None
    icon_url: str | None = None


@strawberry.type
class EmbedMedia:
    url: str


@strawberry.type
class EmbedField:
    name: str
    value: str
    inline: bool


@strawberry.type(description="A rich embed (Discord's shape and limits; see the README's Webhooks section).")
class Embed:
    title: str | None = None
    description: str | None = None
    url: str | None = None
    timestamp: datetime | None = None
    color: int | None = strawberry.field(default=None, description="RGB as an integer (0-16777215).")
    footer: EmbedFooter | None = None
    image: EmbedMedia | None = None
    thumbnail: EmbedMedia | None = None
    author: EmbedAuthor | None = None
    fields: list[EmbedField] = strawberry.field(default_factory=list, directives=[at_most(MAX_FIELDS)])

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Embed:
        footer, author = stored.get("footer"), stored.get("author")
        return cls(
            title=stored.get("title"),
            description=stored.get("description"),
            url=stored.get("url"),
            timestamp=datetime.fromisoformat(stored["timestamp"]) if stored.get("timestamp") else None,
            color=stored.get("color"),
            footer=EmbedFooter(text=footer["text"], icon_url=footer.get("icon_url")) if footer else None,
            image=EmbedMedia(url=stored["image"]["url"]) if stored.get("image") else None,
            thumbnail=EmbedMedia(url=stored["thumbnail"]["url"]) if stored.get("thumbnail") else None,
            author=(
                EmbedAuthor(name=author["name"], url=author.get("url"), icon_url=author.get("icon_url"))
                if author
                else None
            ),
            fields=[
                EmbedField(name=f["name"], value=f["value"], inline=f["inline"])
                for f in stored.get("fields", [])
            ],
        )
