"""Channel order: siblings (the top level, or one folder's channels) hold dense positions 0..n-1.

Pure functions over rows; the service holds the server's layout lock while it applies them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from subgraphs.channels.models import ChannelRow


def siblings(
    rows: Sequence[ChannelRow], parent_id: int | None, *, without: int | None = None
) -> list[ChannelRow]:
    """The channels directly under `parent_id` (None: the top level), in order."""
    group = [r for r in rows if r.parent_id == parent_id and r.id != without]
    return sorted(group, key=lambda r: (r.position, r.id))


def renumber(group: Sequence[ChannelRow]) -> list[ChannelRow]:
    """Give the group positions 0..n-1 in its current order; returns the rows whose position changed."""
    changed = []
    for index, row in enumerate(group):
        if row.position != index:
            row.position = index
            changed.append(row)
    return changed


def display_order(rows: Sequence[ChannelRow]) -> list[ChannelRow]:
    """One server's channels as a sidebar shows them: the top level in order, each folder followed by its
    channels in order."""
    children: dict[int, list[ChannelRow]] = defaultdict(list)
    for row in rows:
        if row.parent_id is not None:
            children[row.parent_id].append(row)
    ordered: list[ChannelRow] = []
    for row in siblings(rows, None):
        ordered.append(row)
        ordered.extend(sorted(children.pop(row.id, []), key=lambda r: (r.position, r.id)))
    for orphans in children.values():  # only if a folder vanished under us; never lose a channel
        ordered.extend(orphans)
    return ordered
