"""Per-request DataLoaders of the users context (a module-level one would cache forever)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiodataloader import DataLoader

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web import presence
from subgraphs.users import repository
from subgraphs.users.models import UserRow
from subgraphs.users.notifications.loaders import Refs, Visible, visible_refs_loader


@dataclass(frozen=True)
class UsersLoaders:
    users: DataLoader[int, UserRow | None]
    presence_visible: DataLoader[int, bool]  # may the caller see this user's status and connection
    notification_refs: DataLoader[Refs, Visible]  # what a notification points at that the caller may see
    _connected: list[DataLoader[int, bool]] = field(default_factory=list)

    def connected(self, store: presence.PresenceStore) -> DataLoader[int, bool]:
        """Live-connection state, one store round trip per batch (the store is the runtime's)."""
        if not self._connected:

            async def load(ids: Sequence[int]) -> list[bool]:
                found = await store.connected(list(ids))
                return [i in found for i in ids]

            self._connected.append(DataLoader(load))
        return self._connected[0]


def build_loaders(uow: UnitOfWork, principal: Principal | None) -> UsersLoaders:
    async def load_users(ids: Sequence[int]) -> list[UserRow | None]:
        found = await repository.users_by_ids(uow.directory(), list(ids))
        return [found.get(i) for i in ids]

    async def load_visibility(ids: Sequence[int]) -> list[bool]:
        if principal is None:
            return [False for _ in ids]
        visible = await presence.may_see_presence(uow.directory(), principal.user_id, ids)
        return [i in visible for i in ids]

    return UsersLoaders(
        users=DataLoader(load_users),
        presence_visible=DataLoader(load_visibility),
        notification_refs=visible_refs_loader(uow, principal),
    )
