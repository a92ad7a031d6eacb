"""Per-request DataLoaders of the messages context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from subgraphs.kernel import access
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.messages import reactions, repository
from subgraphs.messages.models import MessageRow


@dataclass(frozen=True)
class MessagesLoaders:
    reactions: DataLoader[int, list[reactions.ReactionSummary]]
    visible_messages: DataLoader[
        int, MessageRow | None
    ]  # None: missing, or in a channel the viewer can't see


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> MessagesLoaders:
    user_id = principal.user_id if principal else None

    async def load_visible(ids: Sequence[int]) -> list[MessageRow | None]:
        found: dict[int, MessageRow] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                rows = await repository.messages_by_ids(session, shard_ids)
                visible = await access.visible_channel_ids(
                    session, sorted({r.channel_id for r in rows.values()}), user_id
                )
            found.update({i: r for i, r in rows.items() if r.channel_id in visible})
        return [found.get(i) for i in ids]

    async def load_reactions(ids: Sequence[int]) -> list[list[reactions.ReactionSummary]]:
        found: dict[int, list[reactions.ReactionSummary]] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await reactions.summaries(session, shard_ids, user_id))
        return [found.get(i, []) for i in ids]

    return MessagesLoaders(reactions=DataLoader(load_reactions), visible_messages=DataLoader(load_visible))
