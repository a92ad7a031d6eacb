"""Who may receive a channel's shared `messageEvents` stream (the router's fan-out tier asks:
kernel/live_access.py): the members who can read the channel's history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from subgraphs.kernel import access, tenant_tables
from subgraphs.kernel.errors import TopLevelCode
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.live_access import Denial, Verdict, everyone_denied
from subgraphs.kernel.permissions import Permission
from subgraphs.kernel.runtime import Runtime
from subgraphs.kernel.uow import UnitOfWork

READ = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY


async def message_events_access(
    runtime: Runtime, arguments: Mapping[str, Any], user_ids: Sequence[int], renewal: bool
) -> Verdict:
    channel = id_argument(str(arguments.get("channelId", "")), "channelId")
    uow = UnitOfWork(runtime.database, runtime.bus)
    try:
        session = await uow.for_entity(channel)
        server_id = await session.scalar(
            sa.select(tenant_tables.channels.c.server_id).where(tenant_tables.channels.c.id == channel)
        )
        if server_id is None:
            gone = "This channel was deleted." if renewal else "No such channel."
            return everyone_denied(user_ids, TopLevelCode.NOT_FOUND, gone)
        readers = await access.channel_viewers(session, channel, user_ids, READ)
    finally:
        await uow.close()
    lost = (
        Denial(TopLevelCode.FORBIDDEN.value, "You no longer have access to this channel.")
        if renewal
        else Denial(TopLevelCode.NOT_FOUND.value, "No such channel.")
    )
    return Verdict(
        frozenset(readers), {u: lost for u in user_ids if u not in readers}, frozenset({server_id})
    )
