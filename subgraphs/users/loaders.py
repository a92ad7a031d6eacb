"""Per-request DataLoaders of the users context (a module-level one would cache forever)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.users import repository
from subgraphs.users.models import UserRow


@dataclass(frozen=True)
class UsersLoaders:
    users: DataLoader[int, UserRow | None]


def build_loaders(uow: UnitOfWork, _principal: Principal | None) -> UsersLoaders:
    async def load_users(ids: Sequence[int]) -> list[UserRow | None]:
        found = await repository.users_by_ids(uow.directory(), list(ids))
        return [found.get(i) for i in ids]

    return UsersLoaders(users=DataLoader(load_users))
