"""The users subgraph as a deployable unit. Besides GraphQL it serves the built-in issuer's public
endpoints and the media download app (`/media/files/...`, short-lived signed URLs): both are public,
non-GraphQL endpoints of the process whose URL is BEEP_ISSUER_URL."""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from subgraphs.kernel.tenancy.attachment_files import attachment_is_live
from subgraphs.kernel.web.app import SubgraphDefinition
from subgraphs.kernel.web.live_access import own_stream
from subgraphs.kernel.web.runtime import Runtime, RuntimeHolder
from subgraphs.users.issuer import issuer_routes
from subgraphs.users.loaders import build_loaders
from subgraphs.users.schema import schema


class MediaEndpoint:
    """The media app of the process's runtime (built once the lifespan has started it)."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self.holder = holder
        self._built: tuple[Runtime, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.holder.runtime
        if self._built is None or self._built[0] is not runtime:
            database = runtime.database
            self._built = (runtime, runtime.pictures.app(partial(attachment_is_live, database)))
        await self._built[1](scope, receive, send)


def routes(holder: RuntimeHolder) -> list[BaseRoute]:
    return [*issuer_routes(holder), Mount("/media", app=MediaEndpoint(holder))]


definition = SubgraphDefinition(
    "users", schema, build_loaders, routes, live_access={"notifications": own_stream}
)
