"""Mentions: what a sender types (`@username`, `#channel-name`, `@everyone`, `@here`) becomes canonical
tokens in the stored text (`<@id>`, `<#id>`), so renaming a user or a channel never breaks old messages.

Only what the sender may address is resolved: `@username` of a member who can view the channel,
`#name` of a channel of the same server the sender can view (so a private channel's name is never
confirmed); anything else stays plain text. `@everyone`/`@here` ping only with Mention Everyone (without
it they stay text and ping nobody, as on Discord). Code spans and blocks are left alone.

Tokens typed as such (`<@id>`, `<#id>`) are held to the same rule: one the sender may not address (a
user who is not a member able to view the channel, or does not exist; a channel of another server, one
the sender cannot see, or none at all) is stored as plain `@unknown-user` / `#unknown-channel`. Readers
get in `mentions`/`mentionedChannels` only what still resolves for them (types.py), so a message can
never name what a reader may not see, nor break the page that holds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import parse_id
from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.tenancy import access, directory_tables, tenant_tables
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.permissions import Permission

MAX_USER_MENTIONS = 20  # distinct members pinged by one message

_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_USER = re.compile(r"(?<![\w<@])@([A-Za-z0-9_](?:[A-Za-z0-9_.]{0,30}[A-Za-z0-9_])?)")
# A channel name: no spaces; trailing punctuation belongs to the sentence ("see #general, then").
_CHANNEL = re.compile(r"""(?<![\w<#&])#([^\s#<>@`]{0,99}[^\s#<>@`.,!?:;)\]'"])""")
_EVERYONE = re.compile(r"(?<![\w<])@(everyone|here)\b")
USER_TOKEN = re.compile(r"<@(\d{1,20})>")
CHANNEL_TOKEN = re.compile(r"<#(\d{1,20})>")
UNKNOWN_USER = "@unknown-user"  # what a token the sender may not address is stored as
UNKNOWN_CHANNEL = "#unknown-channel"

# Light references to other contexts' tables (read-only): users here (the directory), channels through
# the kernel's shared set of tenant-table references.
_users = directory_tables.users
_channels = tenant_tables.channels


@dataclass(frozen=True)
class Resolved:
    content: str  # with canonical tokens
    mentions_everyone: bool


def _outside_code(content: str) -> list[tuple[bool, str]]:
    """The content cut into (is_code, text) pieces, in order."""
    pieces: list[tuple[bool, str]] = []
    last = 0
    for match in _CODE.finditer(content):
        pieces.append((False, content[last : match.start()]))
        pieces.append((True, match.group(0)))
        last = match.end()
    pieces.append((False, content[last:]))
    return pieces


def candidates(content: str) -> tuple[set[str], set[str], bool]:
    """Usernames (lower case) and channel names (lower case) typed outside code, and @everyone/@here."""
    users: set[str] = set()
    channels: set[str] = set()
    everyone = False
    for is_code, text in _outside_code(content):
        if is_code:
            continue
        users |= {m.lower() for m in _USER.findall(text) if m.lower() not in ("everyone", "here")}
        channels |= {m.lower() for m in _CHANNEL.findall(text)}
        everyone = everyone or bool(_EVERYONE.search(text))
    return users, channels, everyone


def rewrite(content: str, users: dict[str, int], channels: dict[str, int]) -> str:
    """Replace the resolved names (outside code) by tokens; the rest stays as typed."""

    def user(match: re.Match[str]) -> str:
        found = users.get(match.group(1).lower())
        return f"<@{found}>" if found is not None else match.group(0)

    def channel(match: re.Match[str]) -> str:
        found = channels.get(match.group(1).lower())
        return f"<#{found}>" if found is not None else match.group(0)

    return "".join(
        text if is_code else _CHANNEL.sub(channel, _USER.sub(user, text))
        for is_code, text in _outside_code(content)
    )


def typed_tokens(content: str) -> tuple[set[str], set[str]]:
    """The user and channel ids of tokens outside code, as typed (digits, not yet checked)."""
    users: set[str] = set()
    channels: set[str] = set()
    for is_code, text in _outside_code(content):
        if not is_code:
            users.update(USER_TOKEN.findall(text))
            channels.update(CHANNEL_TOKEN.findall(text))
    return users, channels


def keep_tokens(content: str, users: set[int], channels: set[int]) -> str:
    """Tokens (outside code) naming anything but these users and channels become plain text."""

    def user(match: re.Match[str]) -> str:
        return match.group(0) if parse_id(match.group(1)) in users else UNKNOWN_USER

    def channel(match: re.Match[str]) -> str:
        return match.group(0) if parse_id(match.group(1)) in channels else UNKNOWN_CHANNEL

    return "".join(
        text if is_code else CHANNEL_TOKEN.sub(channel, USER_TOKEN.sub(user, text))
        for is_code, text in _outside_code(content)
    )


def _ids(raw: set[str]) -> list[int]:
    return sorted({i for i in map(parse_id, raw) if i is not None})


async def _addressable_tokens(
    shard: AsyncSession, channel: ChannelAccess, author_id: int, content: str
) -> tuple[set[int], set[int]]:
    """Of the tokens typed in `content`, the users and channels the sender may address: members who can
    view the channel (as for `@username`), channels of the same server the sender can view."""
    raw_users, raw_channels = typed_tokens(content)
    user_ids, channel_ids = _ids(raw_users), _ids(raw_channels)
    users = await access.channel_viewers(shard, channel.channel_id, user_ids) if user_ids else set()
    channels: set[int] = set()
    if channel_ids:
        found = await access.channel_accesses(shard, channel_ids, author_id)
        channels = {
            c
            for c, seen in found.items()
            if seen.can_view and seen.server.server_id == channel.server.server_id
        }
    return users, channels


async def resolve(
    directory: AsyncSession, shard: AsyncSession, channel: ChannelAccess, author_id: int, content: str
) -> Resolved:
    typed_users, typed_channels = await _addressable_tokens(shard, channel, author_id, content)
    names, channel_names, everyone = candidates(content)
    users: dict[str, int] = {}
    if names:
        rows = await directory.execute(
            sa.select(_users.c.id, _users.c.username).where(sa.func.lower(_users.c.username).in_(names))
        )
        by_name = {username.lower(): user_id for user_id, username in rows}
        viewers = await access.channel_viewers(shard, channel.channel_id, list(by_name.values()))
        users = {name: user_id for name, user_id in by_name.items() if user_id in viewers}
    if len(set(users.values()) | typed_users) > MAX_USER_MENTIONS:
        raise ValidationFailed(
            f"A message may mention at most {MAX_USER_MENTIONS} members.",
            code=ErrorCode.LIMIT_REACHED,
            field="content",
        )
    channels: dict[str, int] = {}
    if channel_names:
        server_id = channel.server.server_id
        rows = await shard.execute(
            sa.select(_channels.c.id, _channels.c.name)
            .where(_channels.c.server_id == server_id, sa.func.lower(_channels.c.name).in_(channel_names))
            .order_by(_channels.c.id)
        )
        named = [(name.lower(), channel_id) for channel_id, name in rows]
        visible = await access.visible_channel_ids(shard, [c for _, c in named], author_id)
        for name, channel_id in named:
            if channel_id in visible:
                channels.setdefault(name, channel_id)
    # Last, so the plain text of a refused token is never read as a name ("@unknown" of "@unknown-user").
    rewritten = rewrite(content, users, channels)
    kept = keep_tokens(rewritten, typed_users | set(users.values()), typed_channels | set(channels.values()))
    return Resolved(
        content=kept,
        mentions_everyone=everyone and channel.has(Permission.MENTION_EVERYONE),
    )


def only_here(content: str) -> bool:
    """`@here` and no `@everyone` outside code: the message reaches the members connected now (as on
    Discord), not all of them. Read again from the content, so messages need no column for it."""
    said = {
        word for is_code, text in _outside_code(content) if not is_code for word in _EVERYONE.findall(text)
    }
    return said == {"here"}


def _token_ids(pattern: re.Pattern[str], content: str) -> list[int]:
    """Ids of the tokens outside code (code shows them as typed), in order, without repeats; a token
    whose digits are no Beep id (stored before tokens were checked) is left out."""
    found = (
        parse_id(m) for is_code, text in _outside_code(content) if not is_code for m in pattern.findall(text)
    )
    return list(dict.fromkeys(i for i in found if i is not None))


def mentioned_user_ids(content: str) -> list[int]:
    return _token_ids(USER_TOKEN, content)


def mentioned_channel_ids(content: str) -> list[int]:
    return _token_ids(CHANNEL_TOKEN, content)


_USERNAME = sa.select(_users.c.username).where(_users.c.id == sa.bindparam("user_id"))  # built once: per send


async def username(directory: AsyncSession, user_id: int) -> str | None:
    return await directory.scalar(_USERNAME, {"user_id": user_id})


async def usernames(directory: AsyncSession, user_ids: list[int]) -> dict[int, str]:
    rows = await directory.execute(sa.select(_users.c.id, _users.c.username).where(_users.c.id.in_(user_ids)))
    return {user_id: username for user_id, username in rows}


async def channel_names(shard: AsyncSession, channel_ids: list[int]) -> dict[int, str]:
    rows = await shard.execute(
        sa.select(_channels.c.id, _channels.c.name).where(_channels.c.id.in_(channel_ids))
    )
    return {channel_id: name for channel_id, name in rows}
