"""Per-request DataLoaders of the servers context; each batch touches each shard once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiodataloader import DataLoader

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.presence import PresenceStore, shown_online
from subgraphs.servers import repository
from subgraphs.servers.models import RoleRow, ServerRow


@dataclass(frozen=True)
class ServersLoaders:
    servers: DataLoader[int, ServerRow | None]
    viewer_is_member: DataLoader[int, bool]
    server_access: DataLoader[int, ServerAccess | None]
    server_roles: DataLoader[int, list[RoleRow]]
    member_counts: DataLoader[int, int]
    uow: UnitOfWork
    _online: list[DataLoader[int, int]] = field(default_factory=list)

    def online_counts(self, store: PresenceStore) -> DataLoader[int, int]:
        """How many members others see connected, per server (the store is the runtime's)."""
        if not self._online:
            uow = self.uow

            async def load(ids: Sequence[int]) -> list[int]:
                members: dict[int, list[int]] = {}
                for shard, shard_ids in (await uow.group_by_shard(ids)).items():
                    async with uow.reading(shard) as session:
                        members.update(await repository.member_ids_of_servers(session, shard_ids))
                everyone = sorted({u for users in members.values() for u in users})
                online = await shown_online(store, uow.directory(), everyone) if everyone else set()
                return [sum(1 for u in members.get(i, []) if u in online) for i in ids]

            self._online.append(DataLoader(load))
        return self._online[0]


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> ServersLoaders:
    async def load_servers(ids: Sequence[int]) -> list[ServerRow | None]:
        found: dict[int, ServerRow] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await repository.servers_by_ids(session, shard_ids))
        return [found.get(i) for i in ids]

    async def load_membership(ids: Sequence[int]) -> list[bool]:
        user_id = principal.user_id if principal else None
        member: set[int] = set()
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                member |= await access.member_server_ids(session, shard_ids, user_id)
        return [i in member for i in ids]

    async def load_access(ids: Sequence[int]) -> list[ServerAccess | None]:
        user_id = principal.user_id if principal else None
        found: dict[int, ServerAccess] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                found.update(await access.server_accesses(session, shard_ids, user_id))
        return [found.get(i) for i in ids]

    async def load_roles(ids: Sequence[int]) -> list[list[RoleRow]]:
        by_server: dict[int, list[RoleRow]] = {i: [] for i in ids}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                for row in await repository.roles_of_servers(session, shard_ids):
                    by_server[row.server_id].append(row)
        return [by_server[i] for i in ids]

    async def load_member_counts(ids: Sequence[int]) -> list[int]:
        counts: dict[int, int] = {}
        for shard, shard_ids in (await uow.group_by_shard(ids)).items():
            async with uow.reading(shard) as session:
                counts.update(await repository.member_counts(session, shard_ids))
        return [counts.get(i, 0) for i in ids]

    return ServersLoaders(
        servers=DataLoader(load_servers),
        viewer_is_member=DataLoader(load_membership),
        server_access=DataLoader(load_access),
        server_roles=DataLoader(load_roles),
        member_counts=DataLoader(load_member_counts),
        uow=uow,
    )
