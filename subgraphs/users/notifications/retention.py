"""Notifications are an inbox, not an archive: a user keeps the newest `keep_per_user` of them, none older
than `keep_days` (read or not: the message itself stays in its channel). The worker prunes every
`every` seconds under a lease, so several workers do not delete the same rows at once.

Both deletions walk indexes: IDs are time-ordered (db/ids.py), so "older than" is a range of the primary
key; the users over the cap come from the (user_id, id) index, and each one's cut is found on it.
Deletes go in batches of `BATCH` rows, each in its own transaction, so a large backlog never holds one
long lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from db.engines import Database
from db.ids import lowest_id_at
from subgraphs.kernel.leases import LeaseBusy, Leases
from subgraphs.users.notifications.models import NotificationRow

log = logging.getLogger("beep.notifications.retention")

N = NotificationRow
BATCH = 1_000
LEASE = "notifications-retention"


@dataclass(frozen=True)
class Retention:
    keep_days: float
    keep_per_user: int


@dataclass
class Pruned:
    expired: int = 0  # older than keep_days
    over_cap: int = 0  # beyond a user's newest keep_per_user


async def prune(database: Database, retention: Retention, now: datetime) -> Pruned:
    """One pass: deletes what the retention no longer keeps; how many rows of each kind."""
    cutoff = lowest_id_at(now - timedelta(days=retention.keep_days))
    pruned = Pruned(expired=await _delete_in_batches(database, N.id < cutoff))
    async with database.directory_session() as directory:
        crowded = list(
            await directory.scalars(
                sa.select(N.user_id).group_by(N.user_id).having(sa.func.count() > retention.keep_per_user)
            )
        )
    for user_id in crowded:
        async with database.directory_session() as directory:
            oldest_kept = await directory.scalar(
                sa.select(N.id)
                .where(N.user_id == user_id)
                .order_by(N.id.desc())
                .offset(retention.keep_per_user - 1)
                .limit(1)
            )
        if oldest_kept is not None:
            pruned.over_cap += await _delete_in_batches(
                database, (N.user_id == user_id) & (N.id < oldest_kept)
            )
    return pruned


async def _delete_in_batches(database: Database, which: sa.ColumnElement[bool]) -> int:
    """Deletes the matching notifications, oldest first, BATCH per transaction; how many."""
    deleted = 0
    while True:
        async with database.directory_session() as directory, directory.begin():
            ids = list(await directory.scalars(sa.select(N.id).where(which).order_by(N.id).limit(BATCH)))
            if ids:
                await directory.execute(sa.delete(N).where(N.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


async def prune_forever(
    database: Database,
    leases: Leases,
    retention: Retention,
    every: float,
    clock: Callable[[], datetime],
) -> None:
    """Run by the worker: a pass every `every` seconds by whichever worker holds the lease."""
    while True:
        try:
            async with leases.hold(LEASE, ttl=max(every, 60.0), wait=0):
                pruned = await prune(database, retention, clock())
            if pruned.expired or pruned.over_cap:
                log.info(
                    "notifications pruned", extra={"expired": pruned.expired, "over_cap": pruned.over_cap}
                )
        except LeaseBusy:
            pass  # another worker prunes this round
        except Exception:  # a database hiccup: the next round deletes what this one did not
            log.warning("notification pruning failed", exc_info=True)
        await asyncio.sleep(every)
