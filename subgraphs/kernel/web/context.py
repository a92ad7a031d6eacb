"""The per-request context every resolver receives, read once at the edge into typed fields."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import unauthenticated
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.live_signal import wanted as live_signal_wanted
from subgraphs.kernel.web.runtime import Runtime

L = TypeVar("L")
T = TypeVar("T")


@dataclass
class _Operation:
    """One subscription operation's own unit of work and loaders (see `BeepContext.operation`)."""

    context: BeepContext[Any]
    uow: UnitOfWork
    loaders: Any = None


_OPERATION: ContextVar[_Operation | None] = ContextVar("beep_operation", default=None)


@dataclass
class BeepContext(Generic[L]):
    runtime: Runtime
    request: Request | WebSocket
    response: Response | WebSocket | None
    request_uow: UnitOfWork  # the request's; closed when the response (or the WebSocket) ends
    loaders_factory: Callable[[UnitOfWork, Principal | None], L]
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None  # set by Strawberry on graphql-transport-ws init
    _loaders: L | None = field(default=None, repr=False)

    def _operation(self) -> _Operation | None:
        current = _OPERATION.get()
        return current if current is not None and current.context is self else None

    @property
    def uow(self) -> UnitOfWork:
        operation = self._operation()
        return operation.uow if operation is not None else self.request_uow

    @property
    def loaders(self) -> L:
        operation = self._operation()
        if operation is not None:
            if operation.loaders is None:
                operation.loaders = self.loaders_factory(operation.uow, self.principal)
            return operation.loaders  # type: ignore[no-any-return]
        if self._loaders is None:
            self._loaders = self.loaders_factory(self.request_uow, self.principal)
        return self._loaders

    @asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:
        """Around a subscription's body: its own unit of work and loaders. One WebSocket connection has one
        context (Strawberry's), and the router multiplexes a user's subscriptions onto one connection: a
        shared unit of work would have one stream's `release` close the sessions another is reading with
        (the reader then reopens a connection nobody closes). Each operation runs in its own task, whose
        context variables the field resolvers inherit."""
        previous = _OPERATION.get()
        operation = _Operation(self, UnitOfWork(self.runtime.database, self.runtime.bus))
        _OPERATION.set(operation)
        try:
            yield
        finally:
            _OPERATION.set(previous)
            await operation.uow.close()

    @property
    def live_signal(self) -> bool:
        """Whether this connection's subscriptions send the live signal (kernel/web/live_signal.py)."""
        return live_signal_wanted(self.connection_params)

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
        operation = self._operation()
        if operation is not None:
            operation.loaders = None
        else:
            self._loaders = None

    async def read_fresh(self, entity_id: int, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`read` with a short-lived session of the shard holding `entity_id`, closed at once: for the
        checks of long-lived subscriptions, which must not hold a connection between events."""
        uow = UnitOfWork(self.runtime.database, self.runtime.bus)
        try:
            return await read(await uow.for_entity(entity_id))
        finally:
            await uow.close()


def own_operation(
    resolver: Callable[..., AsyncGenerator[T, None]],
) -> Callable[..., AsyncGenerator[T, None]]:
    """Decorates a subscription resolver (under `@strawberry.subscription`): its stream runs inside
    `BeepContext.operation()`, with a unit of work and loaders of its own."""

    @functools.wraps(resolver)
    async def stream(self: Any, info: Any, *args: Any, **kwargs: Any) -> AsyncGenerator[T, None]:
        async with info.context.operation():
            async for item in resolver(self, info, *args, **kwargs):
                yield item

    return stream
