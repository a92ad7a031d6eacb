"""Per-request DataLoaders of the channels context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from db.ids import group_by_shard
from subgraphs.channels import repository
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel import access
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.uow import UnitOfWork


@dataclass(frozen=True)
class ChannelsLoaders:
    visible_channels: DataLoader[int, ChannelRow | None]  # None: missing or not visible to the viewer
    server_channels: DataLoader[int, list[ChannelRow]]  # [] unless the viewer is a member


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> ChannelsLoaders:
    user_id = principal.user_id if principal else None

    async def load_visible(ids: Sequence[int]) -> list[ChannelRow | None]:
        found: dict[int, ChannelRow] = {}
        for shard, shard_ids in group_by_shard(ids).items():
            session = uow.shard(shard)
            visible = await access.visible_channel_ids(session, shard_ids, user_id)
            if visible:
                found.update(await repository.channels_by_ids(session, sorted(visible)))
        return [found.get(i) for i in ids]

    async def load_server_channels(server_ids: Sequence[int]) -> list[list[ChannelRow]]:
        result: dict[int, list[ChannelRow]] = {i: [] for i in server_ids}
        for shard, shard_ids in group_by_shard(server_ids).items():
            session = uow.shard(shard)
            member_of = await access.member_server_ids(session, shard_ids, user_id)
            if member_of:
                for row in await repository.channels_of_servers(session, sorted(member_of)):
                    result[row.server_id].append(row)
        return [result[i] for i in server_ids]

    return ChannelsLoaders(DataLoader(load_visible), DataLoader(load_server_channels))
