"""Input types of the messages context."""

from __future__ import annotations

import strawberry


@strawberry.input
class SendMessageInput:
    channel_id: strawberry.ID
    content: str = strawberry.field(
        description="1-4,000 characters of Markdown (may be empty when files are attached)."
    )
    reply_to_id: strawberry.ID | None = None
    nonce: str | None = strawberry.field(
        default=None,
        description="Client-chosen (≤ 64 chars): a retried send with the same nonce is not duplicated.",
    )
    suppress_embeds: bool = strawberry.field(
        default=False, description="Show no link previews for this message (Discord's SUPPRESS_EMBEDS)."
    )
    attachment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Your uploads (uploadAttachment) in this channel to attach, in order."
    )


@strawberry.input
class EditMessageInput:
    id: strawberry.ID
    content: str
