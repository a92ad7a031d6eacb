"""Federation helpers shared by every subgraph."""

from __future__ import annotations

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.schema_directive import Location

# For a type this subgraph only points at (another subgraph resolves it): `@key(fields: "id",
# resolvable: false)`.
REFERENCE_ONLY = [Key(fields=FieldSet("id"), resolvable=False)]


@strawberry.federation.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="viewerDependent",
    compose=True,
    import_url="https://beep.chat/specs/viewer/v1.0",
    description="This field's value depends on who asks (their permissions, their own data, what they "
    "may see). The router's fan-out tier renders a subscription that selects one once per user instead "
    "of once for every socket (router/fanout.ts).",
)
class ViewerDependent:
    pass


VIEWER_DEPENDENT = [ViewerDependent()]
