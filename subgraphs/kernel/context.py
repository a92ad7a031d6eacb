"""The per-request context every resolver receives, read once at the edge into typed fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import unauthenticated
from subgraphs.kernel.runtime import Runtime
from subgraphs.kernel.uow import UnitOfWork

L = TypeVar("L")
T = TypeVar("T")


@dataclass
class BeepContext(Generic[L]):
    runtime: Runtime
    request: Request | WebSocket
    response: Response | WebSocket | None
    uow: UnitOfWork
    loaders_factory: Callable[[UnitOfWork, Principal | None], L]
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None  # set by Strawberry on graphql-transport-ws init
    _loaders: L | None = field(default=None, repr=False)

    @property
    def loaders(self) -> L:
        if self._loaders is None:
            self._loaders = self.loaders_factory(self.uow, self.principal)
        return self._loaders

    @property
    def user_id(self) -> int | None:
        return self.principal.user_id if self.principal else None

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise unauthenticated()
        return self.principal

    async def release(self) -> None:
        """Between subscription events: close sessions and forget cached loads (they may be stale)."""
        await self.uow.close()
        self._loaders = None

    async def read_fresh(self, entity_id: int, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`read` with a short-lived session of the shard holding `entity_id`, closed at once: for the
        checks of long-lived subscriptions, which must not hold a connection between events."""
        uow = UnitOfWork(self.runtime.database, self.runtime.bus)
        try:
            return await read(await uow.for_entity(entity_id))
        finally:
            await uow.close()
