"""Per-request DataLoaders of the messages context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from media.previews.metadata import Preview
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import attachments, link_previews, mentions, reactions, repository
from subgraphs.messages.models import AttachmentRow, MessageRow


@dataclass(frozen=True)
class MessagesLoaders:
    reactions: DataLoader[int, list[reactions.ReactionSummary]]
    usernames: DataLoader[int, str | None]  # for mention labels and provided `username`s
    channel_names: DataLoader[int, str | None]  # for mention labels; None unless the viewer can see it
    own_channel_names: DataLoader[int, str | None]  # of messages' own channels (their readers may see them)
    visible_messages: DataLoader[
        int, MessageRow | None
    ]  # None: missing, or in a channel the viewer can't read
    link_previews: DataLoader[int, list[Preview]]  # of messages the viewer was already allowed to see
    attachments: DataLoader[int, list[AttachmentRow]]  # by message id; callers check visibility first
    author_blocked: DataLoader[int, bool]  # by author id: whether the viewer blocked them


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> MessagesLoaders:
    user_id = principal.user_id if principal else None

    async def load_visible(ids: Sequence[int]) -> list[MessageRow | None]:
        found: dict[int, MessageRow] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                rows = await repository.messages_by_ids(session, shard_ids)
                channels = sorted({r.channel_id for r in rows.values()})
                accesses = await access.channel_accesses(session, channels, user_id) if user_id else {}
            # Read Message History, as for a page of history: a message id is no way around it.
            readable = {cid for cid, found in accesses.items() if found.can_read}
            found.update({i: r for i, r in rows.items() if r.channel_id in readable})
        return [found.get(i) for i in ids]

    async def load_reactions(ids: Sequence[int]) -> list[list[reactions.ReactionSummary]]:
        found: dict[int, list[reactions.ReactionSummary]] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await reactions.summaries(session, shard_ids, user_id))
        return [found.get(i, []) for i in ids]

    async def load_attachments(ids: Sequence[int]) -> list[list[AttachmentRow]]:
        found: dict[int, list[AttachmentRow]] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await attachments.attachments_of(session, shard_ids))
        return [found.get(i, []) for i in ids]

    async def load_usernames(ids: Sequence[int]) -> list[str | None]:
        found = await mentions.usernames(uow.directory(), list(ids))
        return [found.get(i) for i in ids]

    async def load_channel_names(ids: Sequence[int]) -> list[str | None]:
        found: dict[int, str] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                names = await mentions.channel_names(session, shard_ids)
                visible = await access.visible_channel_ids(session, list(names), user_id)
            found.update({i: name for i, name in names.items() if i in visible})
        return [found.get(i) for i in ids]

    async def load_own_channel_names(ids: Sequence[int]) -> list[str | None]:
        found: dict[int, str] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await mentions.channel_names(session, shard_ids))
        return [found.get(i) for i in ids]

    async def load_link_previews(ids: Sequence[int]) -> list[list[Preview]]:
        found: dict[int, list[Preview]] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await link_previews.previews_of(session, shard_ids))
        return [found.get(i, []) for i in ids]

    async def load_author_blocked(ids: Sequence[int]) -> list[bool]:
        if user_id is None:
            return [False for _ in ids]
        blocked = await repository.blocked_among(uow.directory(), user_id, list(ids))
        return [i in blocked for i in ids]

    return MessagesLoaders(
        author_blocked=DataLoader(load_author_blocked),
        link_previews=DataLoader(load_link_previews),
        usernames=DataLoader(load_usernames),
        channel_names=DataLoader(load_channel_names),
        own_channel_names=DataLoader(load_own_channel_names),
        reactions=DataLoader(load_reactions),
        visible_messages=DataLoader(load_visible),
        attachments=DataLoader(load_attachments),
    )
