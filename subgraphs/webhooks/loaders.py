"""Per-request DataLoaders of the webhooks context (none needed yet)."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy.uow import UnitOfWork


@dataclass(frozen=True)
class WebhooksLoaders:
    pass


def build_loaders(_uow: UnitOfWork, _principal: Principal | None) -> WebhooksLoaders:
    return WebhooksLoaders()
