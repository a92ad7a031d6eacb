"""Per-request DataLoaders of the channels context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from subgraphs.channels import positions, repository
from subgraphs.channels.models import ChannelRow, OverwriteRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.uow import UnitOfWork


@dataclass(frozen=True)
class ChannelsLoaders:
    visible_channels: DataLoader[int, ChannelRow | None]  # None: missing or not visible to the viewer
    server_channels: DataLoader[int, list[ChannelRow]]  # the ones the viewer can view, in display order
    channel_access: DataLoader[int, ChannelAccess | None]
    overwrites: DataLoader[int, list[OverwriteRow]]


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> ChannelsLoaders:
    user_id = principal.user_id if principal else None

    async def load_access(ids: Sequence[int]) -> list[ChannelAccess | None]:
        found: dict[int, ChannelAccess] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await access.channel_accesses(session, shard_ids, user_id))
        return [found.get(i) for i in ids]

    access_loader = DataLoader(load_access)

    async def load_visible(ids: Sequence[int]) -> list[ChannelRow | None]:
        # Access and rows in one session per shard (an entity reference per subscriber and event is the
        # hot path of live delivery: bench/README.md); the accesses found also answer `channel_access`.
        found: dict[int, ChannelRow] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                accesses = await access.channel_accesses(session, shard_ids, user_id)
                visible = [i for i, found_access in accesses.items() if found_access.can_view]
                if visible:
                    found.update(await repository.channels_by_ids(session, visible))
            for channel_id in shard_ids:
                access_loader.prime(channel_id, accesses.get(channel_id))
        return [found.get(i) for i in ids]

    async def load_server_channels(server_ids: Sequence[int]) -> list[list[ChannelRow]]:
        result: dict[int, list[ChannelRow]] = {i: [] for i in server_ids}
        for shard, shard_ids in (await uow.group_by_shard(server_ids)).items():
            async with uow.reading(shard) as session:
                member_of = await access.member_server_ids(session, shard_ids, user_id)
                if not member_of:
                    continue
                rows = await repository.channels_of_servers(session, sorted(member_of))
                accesses = await access.channel_accesses(session, [r.id for r in rows], user_id)
            by_server: dict[int, list[ChannelRow]] = {i: [] for i in member_of}
            for row in rows:
                by_server[row.server_id].append(row)
            for server_id, server_rows in by_server.items():
                result[server_id] = [
                    row
                    for row in positions.display_order(server_rows)
                    if row.id in accesses and accesses[row.id].can_view
                ]
        return [result[i] for i in server_ids]

    async def load_overwrites(ids: Sequence[int]) -> list[list[OverwriteRow]]:
        by_channel: dict[int, list[OverwriteRow]] = {i: [] for i in ids}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                rows = await repository.overwrites_of(session, shard_ids)
            for row in rows:
                by_channel[row.channel_id].append(row)
        return [by_channel[i] for i in ids]

    return ChannelsLoaders(
        DataLoader(load_visible), DataLoader(load_server_channels), access_loader, DataLoader(load_overwrites)
    )
