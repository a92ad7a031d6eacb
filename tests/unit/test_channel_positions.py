"""Channel order rules: dense sibling positions and the sidebar's display order."""

from __future__ import annotations

from datetime import UTC, datetime

from subgraphs.channels.models import ChannelRow
from subgraphs.channels.positions import display_order, renumber, siblings


def row(channel_id: int, position: int, parent_id: int | None = None, kind: str = "TEXT") -> ChannelRow:
    return ChannelRow(
        id=channel_id,
        server_id=1,
        name=f"c{channel_id}",
        kind=kind,
        parent_id=parent_id,
        position=position,
        permissions_synced=True,
        created_at=datetime.now(UTC),
    )


def test_siblings_are_one_level_in_order_ties_broken_by_id() -> None:
    rows = [row(5, 1), row(3, 1), row(2, 0, kind="FOLDER"), row(9, 0, parent_id=2), row(4, 7)]
    assert [r.id for r in siblings(rows, None)] == [2, 3, 5, 4]
    assert [r.id for r in siblings(rows, None, without=3)] == [2, 5, 4]
    assert [r.id for r in siblings(rows, 2)] == [9]


def test_renumber_closes_gaps_and_reports_only_what_changed() -> None:
    group = [row(1, 0), row(2, 2), row(3, 2), row(4, 9)]
    changed = renumber(group)
    assert [r.position for r in group] == [0, 1, 2, 3]
    assert [r.id for r in changed] == [2, 4]
    assert renumber(group) == []


def test_display_order_puts_each_folders_channels_under_it() -> None:
    rows = [
        row(1, 0),
        row(2, 1, kind="FOLDER"),
        row(3, 2),
        row(4, 1, parent_id=2),
        row(5, 0, parent_id=2),
        row(6, 3, kind="FOLDER"),
    ]
    assert [r.id for r in display_order(rows)] == [1, 2, 5, 4, 3, 6]
