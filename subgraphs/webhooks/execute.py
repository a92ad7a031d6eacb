"""Executing a webhook: a Discord "Execute Webhook" payload in, a message out (HTTP and GraphQL share it).

The payload is read and checked before anything is touched (`parse`); then, in one transaction, the
credentials are checked (`service.authenticate`), the webhook's rate limit counted (only for callers
holding the token, so strangers cannot use up a webhook's budget) and the message posted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from subgraphs.kernel.ratelimit import Limit, RateLimiter, Window
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.messages import embeds as embed_rules
from subgraphs.messages import webhook_posts
from subgraphs.messages.embeds import PayloadProblem
from subgraphs.messages.models import MessageRow
from subgraphs.webhooks import service

MAX_USERNAME = 80
# Fields of Discord's payload Beep does not implement; they are accepted and ignored, as Discord ignores
# what does not apply (`tts` needs voice, `flags` and `components` are for apps, threads do not exist).
IGNORED = ("tts", "flags", "components", "thread_name", "applied_tags", "poll", "attachments")


@dataclass(frozen=True)
class Payload:
    content: str
    username: str | None
    avatar_url: str | None
    embeds: list[dict[str, Any]]
    allowed: webhook_posts.AllowedMentions


def parse(raw: Any) -> Payload:
    """A Discord execute-webhook body (already decoded JSON), or PayloadProblem naming the field."""
    if not isinstance(raw, dict):
        raise PayloadProblem(("_body",), "Must be a JSON object.", kind="BASE_TYPE_BAD_TYPE")
    content = webhook_posts.content_text(raw.get("content"))
    username = embed_rules.text(raw.get("username"), ("username",), MAX_USERNAME)
    if username is not None:
        username = username.strip()
        if not username:
            raise embed_rules.required(("username",))
        if "clyde" in username.lower() or "discord" in username.lower():
            raise PayloadProblem(
                ("username",), 'Cannot contain "clyde" or "discord".', kind="USERNAME_INVALID"
            )
    avatar_url = embed_rules.url(raw.get("avatar_url"), ("avatar_url",))
    embeds = embed_rules.validate(raw.get("embeds"))
    if raw.get("embed") is not None and not embeds:  # Discord's legacy single `embed`
        embeds = embed_rules.validate([raw.get("embed")], ("embed",))
    allowed = webhook_posts.allowed_mentions(raw.get("allowed_mentions"))
    if not content and not embeds:
        raise PayloadProblem(("content",), "Cannot send an empty message.", kind="EMPTY_MESSAGE")
    return Payload(content, username, avatar_url, embeds, allowed)


def execution_limit(settings: Settings) -> Limit:
    return Limit("webhook_execute", settings.webhook_rate_count, settings.webhook_rate_window_seconds)


class RateLimited(Exception):
    """Over the webhook's limit: nothing is written."""

    def __init__(self, window: Window) -> None:
        super().__init__("rate limited")
        self.window = window

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.window.resets_in))


@dataclass(frozen=True)
class Executed:
    message: MessageRow
    window: Window
    discord: dict[str, Any] | None  # the Discord-shaped message, when asked for (`?wait=true`)


async def execute(
    uow: UnitOfWork,
    limiter: RateLimiter,
    settings: Settings,
    webhook_id: int | None,
    token: str,
    payload: Payload,
    *,
    want_message: bool,
) -> Executed:
    """Inside the caller's transaction. Raises AuthenticationFailed, WebhookGone, RateLimited or a
    validation error (too many mentions)."""
    row = await service.authenticate(uow, webhook_id, token)
    window = await limiter.hit(execution_limit(settings), row.id)
    if not window.allowed:
        raise RateLimited(window)
    message = await webhook_posts.post(
        uow,
        webhook_posts.WebhookPost(
            channel_id=row.channel_id,
            webhook_id=row.id,
            name=payload.username or row.name,
            avatar_url=payload.avatar_url or row.avatar_url,
            content=payload.content,
            embeds=payload.embeds,
            allowed=payload.allowed,
        ),
    )
    discord = await webhook_posts.discord_shape(uow, message) if want_message else None
    return Executed(message, window, discord)
