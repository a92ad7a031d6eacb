"""Federation helpers shared by every subgraph."""

from __future__ import annotations

from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

# For a type this subgraph only points at (another subgraph resolves it): `@key(fields: "id",
# resolvable: false)`.
REFERENCE_ONLY = [Key(fields=FieldSet("id"), resolvable=False)]
