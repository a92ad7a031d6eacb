"""Input types of the servers context."""

from __future__ import annotations

import strawberry

from subgraphs.servers.types import ServerVisibility


@strawberry.input
class CreateServerInput:
    name: str = strawberry.field(description="1-100 characters.")
    visibility: ServerVisibility = ServerVisibility.PRIVATE
    description: str | None = strawberry.field(default=None, description="Up to 1,000 characters.")
