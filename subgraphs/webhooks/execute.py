"""Executing a webhook: a Discord "Execute Webhook" payload in, a message out (HTTP and GraphQL share it).

The payload is read and checked before anything is touched (`parse`); then, in one transaction, the
credentials are checked (`service.authenticate`), the webhook's rate limit counted (only for callers
holding the token, so strangers cannot use up a webhook's budget) and the message posted. With files
(Discord's multipart form), `execute_with_files` splits that around storing them, as message
attachments are sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from media.attachments import Attachments, StoredAttachment
from subgraphs.kernel.errors import ANY_ERROR_TYPE, DomainError, UserError
from subgraphs.kernel.metrics import RATE_LIMIT_HITS, child
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.mutations import run_in_transaction
from subgraphs.kernel.web.ratelimit import Limit, RateLimiter, Window
from subgraphs.messages import api as messages
from subgraphs.messages.api import MessageRow, PayloadProblem
from subgraphs.webhooks import service
from subgraphs.webhooks.models import WebhookRow

MAX_USERNAME = 80
# Fields of Discord's payload Beep does not implement; they are accepted and ignored, as Discord ignores
# what does not apply (`tts` needs voice, `components` are for apps, threads do not exist).
IGNORED = ("tts", "components", "thread_name", "applied_tags", "poll", "attachments")
# `flags`: only SUPPRESS_EMBEDS (no link previews) means something here; the others are ignored.
SUPPRESS_EMBEDS = 1 << 2


@dataclass(frozen=True)
class Payload:
    content: str
    username: str | None
    avatar_url: str | None
    embeds: list[dict[str, Any]]
    allowed: messages.AllowedMentions
    suppress_embeds: bool = False


def parse(raw: Any, *, with_files: bool = False) -> Payload:
    """A Discord execute-webhook body (already decoded JSON), or PayloadProblem naming the field. A post
    with files (`with_files`) may have neither content nor embeds, as on Discord."""
    if not isinstance(raw, dict):
        raise PayloadProblem(("_body",), "Must be a JSON object.", kind="BASE_TYPE_BAD_TYPE")
    content = messages.content_text(raw.get("content"))
    username = messages.text(raw.get("username"), ("username",), MAX_USERNAME)
    if username is not None:
        username = username.strip()
        if not username:
            raise messages.required(("username",))
        if "clyde" in username.lower() or "discord" in username.lower():
            raise PayloadProblem(
                ("username",), 'Cannot contain "clyde" or "discord".', kind="USERNAME_INVALID"
            )
    avatar_url = messages.url(raw.get("avatar_url"), ("avatar_url",))
    embeds = messages.validate_embeds(raw.get("embeds"))
    if raw.get("embed") is not None and not embeds:  # Discord's legacy single `embed`
        embeds = messages.validate_embeds([raw.get("embed")], ("embed",))
    allowed = messages.allowed_mentions(raw.get("allowed_mentions"))
    if not content and not embeds and not with_files:
        raise PayloadProblem(("content",), "Cannot send an empty message.", kind="EMPTY_MESSAGE")
    flags = raw.get("flags")
    if isinstance(flags, str) and flags.isdigit():  # a form field
        flags = int(flags)
    if flags is not None and (not isinstance(flags, int) or isinstance(flags, bool) or flags < 0):
        raise messages.wrong_type(("flags",), "a non-negative integer")
    return Payload(content, username, avatar_url, embeds, allowed, bool((flags or 0) & SUPPRESS_EMBEDS))


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


@dataclass(frozen=True)
class Admitted:
    webhook: WebhookRow
    window: Window


async def admit(
    uow: UnitOfWork, limiter: RateLimiter, settings: Settings, webhook_id: int | None, token: str
) -> Admitted:
    """The webhook, if the token opens it and its rate limit allows one more execution (counted here).
    Raises AuthenticationFailed, WebhookGone or RateLimited."""
    row = await service.authenticate(uow, webhook_id, token)
    window = await limiter.hit(execution_limit(settings), row.id)
    if not window.allowed:
        child(RATE_LIMIT_HITS, window.limit.name).inc()
        raise RateLimited(window)
    return Admitted(row, window)


async def post(
    uow: UnitOfWork,
    admitted: Admitted,
    payload: Payload,
    *,
    files: Sequence[StoredAttachment] = (),
    attachments: Attachments | None = None,
    want_message: bool,
) -> Executed:
    """Post the admitted webhook's message, with files already stored (inside the caller's transaction).
    Raises a validation error (too many mentions) or NotFound (its channel is gone)."""
    row = admitted.webhook
    message, attached = await messages.post_as_webhook(
        uow,
        messages.WebhookPost(
            channel_id=row.channel_id,
            webhook_id=row.id,
            name=payload.username or row.name,
            avatar_url=payload.avatar_url or row.avatar_url,
            content=payload.content,
            embeds=payload.embeds,
            allowed=payload.allowed,
            files=files,
            suppress_embeds=payload.suppress_embeds,
        ),
    )
    discord = await messages.discord_shape(uow, message, attached, attachments) if want_message else None
    return Executed(message, admitted.window, discord)


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
    """An execution without files, in one transaction (the caller's). Raises AuthenticationFailed,
    WebhookGone, RateLimited or a validation error (too many mentions)."""
    admitted = await admit(uow, limiter, settings, webhook_id, token)
    return await post(uow, admitted, payload, want_message=want_message)


async def execute_with_files(
    uow: UnitOfWork,
    limiter: RateLimiter,
    settings: Settings,
    attachments: Attachments,
    webhook_id: int | None,
    token: str,
    payload: Payload,
    files: Sequence[Any],
    *,
    want_message: bool,
) -> Executed | UserError:
    """An execution with files, as `sendMessage` does it (subgraphs/messages/attachments.py): files are
    never stored inside a transaction. A first transaction checks the token and counts the rate limit (a
    wrong token or a 429 stores nothing); the files are then checked and stored in the channel's scope
    (all or nothing); a second transaction checks the token again (it may have been regenerated
    meanwhile) and writes the message with its attachments. If that does not commit, the files are
    deleted. Returns a user error (ValidationError for a refused file) or raises RateLimited."""
    admitted = await run_in_transaction(
        uow, lambda: admit(uow, limiter, settings, webhook_id, token), ANY_ERROR_TYPE
    )
    if not isinstance(admitted, Admitted):
        return admitted
    try:
        stored = await messages.store_files(
            attachments, admitted.webhook.server_id, admitted.webhook.channel_id, files
        )
    except DomainError as error:
        return ANY_ERROR_TYPE.shape(error)

    async def write() -> Executed:
        again = await service.authenticate(uow, webhook_id, token)
        return await post(
            uow,
            Admitted(again, admitted.window),
            payload,
            files=stored,
            attachments=attachments,
            want_message=want_message,
        )

    try:
        result = await run_in_transaction(uow, write, ANY_ERROR_TYPE)
    except BaseException:
        await messages.discard_files(attachments, stored)
        raise
    if not isinstance(result, Executed):
        await messages.discard_files(attachments, stored)
    return result
