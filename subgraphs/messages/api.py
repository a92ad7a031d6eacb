"""What other contexts may use of the messages context, besides its events (subgraphs/messages/events.py)
and federation: the only module of it they import (docs/architecture-boundaries.md; lint-imports holds it).

- webhooks: validate a Discord execute body (embeds, allowed mentions, content), post it as the webhook's
  message with its files, and answer in Discord's shape;
- users (notifications): who a message's text mentions;
- friends (conversations): a member's read states in a conversation, carried when it turns into a group.
"""

from __future__ import annotations

from subgraphs.messages.attachments import FIELD as FILES_FIELD
from subgraphs.messages.attachments import discard as discard_files
from subgraphs.messages.attachments import store_files
from subgraphs.messages.embeds import PayloadProblem, required, text, url, wrong_type
from subgraphs.messages.embeds import validate as validate_embeds
from subgraphs.messages.mentions import mentioned_user_ids, only_here
from subgraphs.messages.models import MessageRow
from subgraphs.messages.read_states import read_states_in
from subgraphs.messages.webhook_posts import (
    AllowedMentions,
    WebhookPost,
    allowed_mentions,
    content_text,
    discord_shape,
)
from subgraphs.messages.webhook_posts import post as post_as_webhook

__all__ = [
    "FILES_FIELD",
    "AllowedMentions",
    "MessageRow",
    "PayloadProblem",
    "WebhookPost",
    "allowed_mentions",
    "content_text",
    "discard_files",
    "discord_shape",
    "mentioned_user_ids",
    "only_here",
    "post_as_webhook",
    "read_states_in",
    "required",
    "store_files",
    "text",
    "url",
    "validate_embeds",
    "wrong_type",
]
