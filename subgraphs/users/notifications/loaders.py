"""What of a notification's references the reader may still see, batched per request.

A notification points at a server, a channel and a message of a tenant shard; their subgraphs resolve
them, but an entity they refuse (a message deleted or in a channel the reader lost) would reach the client
as an error. So the references are checked here first, with the same rules (kernel/tenancy/access.py): a page
of notifications costs about seven queries per shard it touches, not per notification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiodataloader import DataLoader

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users.notifications import repository


@dataclass(frozen=True)
class Refs:
    server_id: int | None
    channel_id: int | None
    message_id: int | None


@dataclass(frozen=True)
class Visible:
    server: bool = False
    channel: bool = False
    message: bool = False


def visible_refs_loader(uow: UnitOfWork, principal: Principal | None) -> DataLoader[Refs, Visible]:
    async def load(keys: Sequence[Refs]) -> list[Visible]:
        if principal is None:
            return [Visible() for _ in keys]
        user_id = principal.user_id
        servers = sorted({k.server_id for k in keys if k.server_id is not None})
        seen_servers: set[int] = set()
        seen_channels: set[int] = set()
        seen_messages: set[int] = set()
        for shard, server_ids in (await uow.group_by_shard(servers)).items():
            in_shard = set(server_ids)
            mine = [k for k in keys if k.server_id in in_shard]
            channels = sorted({k.channel_id for k in mine if k.channel_id is not None})
            async with uow.reading(shard) as session:
                found = await access.server_accesses(session, server_ids, user_id)
                seen_servers |= {s for s, a in found.items() if a.can_view}
                visible = await access.visible_channel_ids(session, channels, user_id)
                seen_channels |= visible
                messages = [
                    k.message_id for k in mine if k.message_id is not None and k.channel_id in visible
                ]
                seen_messages |= await repository.existing_messages(session, messages)
        return [
            Visible(
                server=k.server_id in seen_servers,
                channel=k.channel_id in seen_channels,
                message=k.message_id in seen_messages,
            )
            for k in keys
        ]

    return DataLoader(load)
