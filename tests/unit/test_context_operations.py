"""Subscriptions on one WebSocket share Strawberry's context; each runs with its own unit of work."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket

from db.engines import Database
from db.shardmap import ShardMap
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.context import BeepContext, own_operation
from subgraphs.kernel.web.runtime import Runtime


@pytest.fixture
def context(tmp_path: Path) -> BeepContext[Any]:
    database = Database(
        f"sqlite+aiosqlite:///{tmp_path}/directory.db",
        ShardMap.parse(f"0-1=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 2),
    )
    runtime = cast(Runtime, SimpleNamespace(database=database, bus=InProcessBus()))
    return BeepContext(
        runtime=runtime,
        request=cast(WebSocket, None),
        response=None,
        request_uow=UnitOfWork(database, runtime.bus),
        loaders_factory=lambda uow, _principal: SimpleNamespace(uow=uow),
    )


async def test_each_operation_has_its_own_unit_of_work_and_loaders(context: BeepContext[Any]) -> None:
    seen: dict[str, tuple[UnitOfWork, Any]] = {}
    both_inside = asyncio.Barrier(2)

    async def operation(name: str) -> None:
        async with context.operation():
            await both_inside.wait()
            seen[name] = (context.uow, context.loaders)
            assert context.loaders.uow is context.uow
            await context.release()  # forgets this operation's loads only
            assert context.loaders is not seen[name][1]
            await both_inside.wait()

    await asyncio.gather(asyncio.create_task(operation("a")), asyncio.create_task(operation("b")))
    (uow_a, _), (uow_b, _) = seen["a"], seen["b"]
    assert uow_a is not uow_b
    assert context.request_uow not in (uow_a, uow_b)
    assert context.uow is context.request_uow  # outside any operation: the request's


async def test_a_decorated_subscription_streams_inside_its_operation(context: BeepContext[Any]) -> None:
    class Subscription:
        @own_operation
        async def events(self, info: Any, count: int) -> Any:
            for n in range(count):
                yield (n, info.context.uow)

    info = SimpleNamespace(context=context)
    items = [item async for item in Subscription().events(info, 3)]
    assert [n for n, _ in items] == [0, 1, 2]
    assert len({id(uow) for _, uow in items}) == 1
    assert items[0][1] is not context.request_uow
