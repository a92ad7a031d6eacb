"""The messages subgraph as a deployable unit."""

from __future__ import annotations

from subgraphs.kernel.tenancy.attachment_files import sweeper
from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.kernel.web.runtime import Runtime
from subgraphs.messages.live import message_events_access
from subgraphs.messages.loaders import build_loaders
from subgraphs.messages.schema import schema


async def sweep_attachment_files(runtime: Runtime) -> None:
    interval = runtime.settings.attachment_sweep_seconds
    if interval > 0:
        await sweeper(runtime.database, runtime.attachments, interval)


definition = SubgraphDefinition(
    "messages",
    schema,
    build_loaders,
    background=sweep_attachment_files,
    large_uploads=True,
    live_access={"messageEvents": message_events_access},
)
