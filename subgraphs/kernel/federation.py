"""Federation helpers shared by every subgraph."""

from __future__ import annotations

import strawberry
from strawberry import UNSET
from strawberry.federation.schema_directives import Cost, Key, ListSize
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


# Demand control (the router's cost limit, router/cost.ts). Every list field declares how long it can be:
# `@listSize(assumedSize: n)` for a list bounded by a rule of the domain (a server's 500 channels), or
# `@listSize(slicingArguments: ["first"], sizedFields: ["edges"])` for a page whose `first` argument
# sizes its `edges`. The router multiplies these bounds down an operation to estimate what it would
# return before running it; tests/unit/test_list_bounds.py fails for a list field that declares none.


def at_most(size: int) -> ListSize:
    """`@listSize(assumedSize: size)`: this list never holds more than `size` items."""
    return ListSize(
        assumed_size=size, slicing_arguments=UNSET, sized_fields=UNSET, require_one_slicing_argument=UNSET
    )


def page_of(argument: str = "first", sized: str | None = "edges", otherwise: int | None = None) -> ListSize:
    """`@listSize(slicingArguments: [argument], sizedFields: [sized])`: a page of `argument` items in its
    `sized` field (a connection's `edges`); with `sized=None`, the list itself holds them. `otherwise`
    (`assumedSize`) prices a page whose argument is left null: the largest page the field serves."""
    return ListSize(
        assumed_size=otherwise if otherwise is not None else UNSET,
        slicing_arguments=[argument],
        sized_fields=[sized] if sized else UNSET,
        require_one_slicing_argument=UNSET,
    )


def free() -> Cost:
    """`@cost(weight: 0)` on a type: its objects add nothing to an operation's cost (what they hold
    still does), for rows a bounded list already read."""
    return Cost(weight=0)
