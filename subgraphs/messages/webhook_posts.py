"""Messages posted by webhooks: the messages context's narrow entry point for the webhooks context.

The webhooks context checks the webhook and its token, then calls `post` in the same unit of work (so
`?wait=true` answers with the committed message and a refused post writes nothing). This module owns
what a webhook message is: the name and avatar shown, embeds, and which mentions ping.

Mentions follow Discord's webhook rules rather than a member's: the content carries `<@id>` tokens (not
`@username`, which stays text), and `allowed_mentions` decides which of them ping. Absent, every user
mention and `@everyone`/`@here` ping (a webhook needs no Mention Everyone); `{"parse": []}` pings nobody;
`parse: ["users"]` every mentioned member, `users: [ids]` only those (at most 100; not both). A user token
that does not ping (not allowed, not a member who can view the channel) is stored as the plain
`@username` (or `@unknown-user`), so it is neither a mention nor counted as one. Role mentions do not
exist in Beep: `<@&id>` stays text and "roles" in `parse` is accepted and has no effect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from db.ids import new_id, parse_id
from media.attachments import Attachments, StoredAttachment
from subgraphs.kernel.errors import ErrorCode, NotFound
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import attachments, mentions, repository, service
from subgraphs.messages import embeds as embed_rules
from subgraphs.messages.embeds import PayloadProblem
from subgraphs.messages.models import AttachmentRow, MessageRow

MAX_CONTENT = 2000  # Discord's limit for webhook content (a member's message may have 4,000)
MAX_ALLOWED_USERS = 100
PARSE_KINDS = ("users", "roles", "everyone")
_USER_TOKEN = re.compile(r"<@!?(\d{1,20})>")
_CHANNEL_TOKEN = re.compile(r"<#(\d{1,20})>")


@dataclass(frozen=True)
class AllowedMentions:
    parse: frozenset[str] = frozenset(("users", "everyone"))
    users: frozenset[int] = field(default_factory=frozenset)

    def pings_user(self, user_id: int) -> bool:
        return "users" in self.parse or user_id in self.users


def allowed_mentions(raw: Any, path: tuple[str, ...] = ("allowed_mentions",)) -> AllowedMentions:
    """Discord's `allowed_mentions` object (None: the default, everything pings)."""
    if raw is None:
        return AllowedMentions()
    if not isinstance(raw, dict):
        raise embed_rules.wrong_type(path, "an object")
    parse = raw.get("parse", [])
    if not isinstance(parse, list) or not all(isinstance(p, str) for p in parse):
        raise embed_rules.wrong_type((*path, "parse"), "an array of strings")
    for i, kind in enumerate(parse):
        if kind not in PARSE_KINDS:
            raise PayloadProblem(
                (*path, "parse", i), f"Value must be one of {set(PARSE_KINDS)}.", kind="ENUM_TYPE_COERCE"
            )
    users = raw.get("users", [])
    if not isinstance(users, list):
        raise embed_rules.wrong_type((*path, "users"), "an array of snowflakes")
    if len(users) > MAX_ALLOWED_USERS:
        raise embed_rules.too_long((*path, "users"), MAX_ALLOWED_USERS)
    ids: set[int] = set()
    for i, user in enumerate(users):
        text = str(user) if isinstance(user, int | str) and not isinstance(user, bool) else ""
        if not text.isdigit() or len(text) > 20:
            raise PayloadProblem((*path, "users", i), "Value is not a snowflake.", kind="NUMBER_TYPE_COERCE")
        ids.add(int(text))
    if "users" in parse and ids:
        raise PayloadProblem(
            (*path, "users"),
            'Mutually exclusive: "users" in parse and a users list.',
            kind="SET_TYPE_ALREADY_CONTAINS_VALUE",
        )
    return AllowedMentions(frozenset(parse), frozenset(ids))


def content_text(raw: Any) -> str:
    """The payload's `content` ("" when absent), Discord's limit checked."""
    found = embed_rules.text(raw, ("content",), MAX_CONTENT)
    return (found or "").strip()


@dataclass(frozen=True)
class WebhookPost:
    channel_id: int
    webhook_id: int
    name: str  # the webhook's name or the payload's `username`
    avatar_url: str | None
    content: str  # validated by content_text
    embeds: list[dict[str, Any]]  # validated by embeds.validate
    allowed: AllowedMentions
    # Files already checked and stored in the channel's scope (attachments.store_files), outside the
    # transaction; the caller deletes them if this post is not committed.
    files: Sequence[StoredAttachment] = ()
    suppress_embeds: bool = False  # Discord's SUPPRESS_EMBEDS flag: no link previews


async def post(uow: UnitOfWork, data: WebhookPost) -> tuple[MessageRow, list[AttachmentRow]]:
    """Store and announce a webhook's message in its channel (which must still be a text channel), with
    its attachments (the webhook is their uploader)."""
    if not data.content and not data.embeds and not data.files:
        raise PayloadProblem(("content",), "Cannot send an empty message.", kind="EMPTY_MESSAGE")
    session = await uow.for_entity(data.channel_id)
    # Not an access check: a webhook is no member, its token was its authority (webhooks' `authenticate`).
    channel = await access.channel_access(session, data.channel_id, None)
    if channel is None or channel.kind != "TEXT":
        raise NotFound("The webhook's channel is gone.", field="channelId")
    content, pings_everyone = await _resolve_mentions(uow, channel, data.content, data.allowed)
    message = MessageRow(
        id=new_id(await uow.shard_for(data.channel_id)),
        channel_id=data.channel_id,
        server_id=channel.server.server_id,
        author_id=data.webhook_id,
        content=content,
        mention_everyone=pings_everyone,
        reply_to_id=None,
        nonce=None,
        created_at=datetime.now(UTC),
        webhook_id=data.webhook_id,
        author_name=data.name,
        author_avatar_url=data.avatar_url,
        embeds=embed_rules.dump(data.embeds),
        suppress_embeds=data.suppress_embeds,
    )
    repository.add_message(session, message)
    await session.flush()
    rows = attachments.add_rows(
        session, await uow.shard_for(data.channel_id), message, data.webhook_id, data.files
    )
    if rows:
        await session.flush()
    service.announce_created(uow, message)
    return message, rows


async def _resolve_mentions(
    uow: UnitOfWork, channel: access.ChannelAccess, content: str, allowed: AllowedMentions
) -> tuple[str, bool]:
    pieces = mentions._outside_code(content)
    # Digits that are no Beep id (too long for the database, say) address no one: plain text below.
    wanted = {i for i in _token_ids(pieces, _USER_TOKEN) if i is not None}
    session = await uow.for_entity(channel.channel_id)
    pinged: set[int] = set()
    names: dict[int, str] = {}
    if wanted:
        viewers = await access.channel_viewers(session, channel.channel_id, sorted(wanted))
        pinged = {u for u in viewers if allowed.pings_user(u)}
        names = await mentions.usernames(uow.directory(), sorted(wanted - pinged))
    if len(pinged) > mentions.MAX_USER_MENTIONS:
        raise PayloadProblem(
            ("content",),
            f"A message may mention at most {mentions.MAX_USER_MENTIONS} members.",
            kind="BASE_TYPE_MAX_LENGTH",
            code=ErrorCode.LIMIT_REACHED,
        )
    linked = {i for i in _token_ids(pieces, _CHANNEL_TOKEN) if i is not None}
    located = await access.channel_accesses(session, sorted(linked), None) if linked else {}
    same_server_ids = {
        c for c, found in located.items() if found.server.server_id == channel.server.server_id
    }

    def user(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id in pinged:
            return f"<@{user_id}>"
        return f"@{names.get(user_id, 'unknown-user')}"

    def linked_channel(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(1)) in same_server_ids else "#unknown-channel"

    rewritten = "".join(
        text if is_code else _CHANNEL_TOKEN.sub(linked_channel, _USER_TOKEN.sub(user, text))
        for is_code, text in pieces
    )
    everyone = "everyone" in allowed.parse and any(
        not is_code and mentions._EVERYONE.search(text) for is_code, text in pieces
    )
    return rewritten, everyone


def _token_ids(pieces: list[tuple[bool, str]], token: re.Pattern[str]) -> set[int | None]:
    return {parse_id(m) for is_code, text in pieces if not is_code for m in token.findall(text)}


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def discord_attachment(row: AttachmentRow, files: Attachments) -> dict[str, Any]:
    """An attachment as Discord returns it; `url` (and `proxy_url`, the same: Beep has no media proxy) is
    a signed download URL that lives BEEP_ATTACHMENT_URL_TTL_SECONDS, given to the token's holder, who
    sent the file. Discord gives `width`/`height` for images only."""
    shown: dict[str, Any] = {
        "id": str(row.id),
        "filename": row.filename,
        "size": row.size,
        "url": files.url(row.storage_key, row.filename, row.content_type),
        "content_type": row.content_type,
    }
    shown["proxy_url"] = shown["url"]
    if row.width is not None and row.height is not None:
        shown["width"], shown["height"] = row.width, row.height
    return shown


async def discord_shape(
    uow: UnitOfWork,
    message: MessageRow,
    attached: Sequence[AttachmentRow] = (),
    files: Attachments | None = None,
) -> dict[str, Any]:
    """The message as Discord's API returns it (`?wait=true`), so Discord tooling can read it. IDs are
    strings (snowflake-sized); `author.avatar` is Discord's image hash, which Beep has not: the shown
    avatar is in Beep's extra `author.avatar_url`."""
    pinged = mentions.mentioned_user_ids(message.content)
    names = await mentions.usernames(uow.directory(), pinged) if pinged else {}
    return {
        "id": str(message.id),
        "type": 0,
        "content": message.content,
        "channel_id": str(message.channel_id),
        "guild_id": str(message.server_id),
        "author": {
            "id": str(message.webhook_id),
            "username": message.author_name,
            "avatar": None,
            "avatar_url": message.author_avatar_url,
            "discriminator": "0000",
            "public_flags": 0,
            "flags": 0,
            "bot": True,
            "global_name": None,
        },
        "attachments": [discord_attachment(row, files) for row in attached] if files else [],
        "embeds": embed_rules.load(message.embeds),
        "mentions": [{"id": str(u), "username": names.get(u), "bot": False} for u in pinged if u in names],
        "mention_roles": [],
        "mention_everyone": message.mention_everyone,
        "pinned": False,
        "tts": False,
        "timestamp": _timestamp(message.created_at),
        "edited_timestamp": None,
        "flags": 4 if message.suppress_embeds else 0,
        "components": [],
        "webhook_id": str(message.webhook_id),
    }
