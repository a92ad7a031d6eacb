"""Per-request DataLoaders of the friends context (none needed yet: its reads are per-viewer)."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy.uow import UnitOfWork


@dataclass(frozen=True)
class FriendsLoaders:
    pass


def build_loaders(_uow: UnitOfWork, _principal: Principal | None) -> FriendsLoaders:
    return FriendsLoaders()
