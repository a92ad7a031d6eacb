"""`beep tenants move`: move a tenant to another logical shard while it is in use.

The journal (`tenant_moves`) says where a move is; every step can be re-run:

1. COPYING is journalled first. From then on (within the locator's refresh, which the mover waits out)
   every process looks up the IDs minted in the source shard in `relocations` — still empty for this
   tenant, so they keep landing on the source copy.
2. The tenant's rows are copied to the target shard (bulk, then a catch-up pass), without locks.
3. The switch: the tenant's `servers` row is locked FOR UPDATE on the source. Every write transaction of
   the tenant takes a shared lock on that row and checks `moved_to` (kernel/tenancy/access.py), so from here
   no write of the tenant commits on the source. Under the lock: what changed since the copy is synced,
   both copies are compared table by table (keys and row digests), the target commits, then the source
   is fenced (`moved_to`) and commits, then the directory commits the relocations, `tenants.shard` and
   SWITCHED. Writers that waited on the lock see `moved_to`, roll back and retry on the target
   (kernel/web/mutations.py). The pause is the length of this step.
4. After another refresh interval (a reader that located the tenant just before the switch reads the old,
   consistent copy meanwhile), the source rows are deleted in batches and the move is DONE.

Interrupted in COPYING, re-running the same command resumes (the copy is a comparison, so a partial target
is completed, not duplicated); `--abort` deletes the target copy, lifts the fence and journals FAILED.
Interrupted in SWITCHED, re-running finishes the deletion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.engines import Database
from db.ids import shard_of
from db.locator import Relocation, TenantMove
from db.tenant_move.plan import TENANT_TABLE, MoveError, MovePlan, check_target, plan_tables
from db.tenant_move.sync import Digests, all_digests, batches, delete_tenant, keys, sync
from db.tenants import Tenant

COPYING, SWITCHED, DONE, FAILED = "COPYING", "SWITCHED", "DONE", "FAILED"
UNFINISHED = (COPYING, SWITCHED)
LOCK_TIMEOUT = "10s"  # how long the switch waits for the tenant's in-flight writers before giving up


@dataclass
class MoveReport:
    tenant_id: int
    from_shard: int
    to_shard: int
    resumed: bool
    rows: dict[str, int] = field(default_factory=dict)  # the tenant's rows per table, as switched
    caught_up: int = 0  # rows inserted, updated or deleted under the switch's lock
    relocations: int = 0
    deleted: int = 0  # rows removed from the source
    copy_seconds: float = 0.0
    pause_seconds: float = 0.0  # the tenant's writes wait (or retry) this long
    total_seconds: float = 0.0
    phases: dict[str, str] = field(default_factory=dict)  # when each step began (UTC, ISO 8601)

    def mark(self, phase: str) -> None:
        self.phases[phase] = datetime.now(UTC).isoformat()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class TenantMover:
    def __init__(
        self,
        database: Database,
        *,
        settle_seconds: float = 5.0,
        batch_size: int = 1000,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.database = database
        self.settle_seconds = settle_seconds
        self.batch_size = batch_size
        self.progress = progress

    async def move(self, tenant_id: int, to_shard: int) -> MoveReport:
        async with self._exclusive(tenant_id):
            return await self._move(tenant_id, to_shard)

    async def _move(self, tenant_id: int, to_shard: int) -> MoveReport:
        started = time.monotonic()
        journal, resumed = await self._begin(tenant_id, to_shard)
        report = MoveReport(tenant_id, journal.from_shard, journal.to_shard, resumed)
        plan = await self._plan(journal.from_shard, journal.to_shard)
        if journal.state == COPYING:
            await self._settle("so every process routes the source shard's IDs through relocations")
            report.mark("copy")
            copy_started = time.monotonic()
            await self._copy(plan, journal)
            report.copy_seconds = time.monotonic() - copy_started
            report.mark("switch")
            await self._switch(plan, journal, report)
            report.mark("switched")
        await self._settle("so no reader still uses the source copy")
        report.mark("delete")
        report.deleted = await self._finish(plan, journal)
        report.mark("done")
        report.total_seconds = time.monotonic() - started
        return report

    async def abort(self, tenant_id: int) -> TenantMove:
        """Give up an unfinished copy: delete the target's rows, lift the source's fence, journal FAILED."""
        async with self._exclusive(tenant_id), self.database.directory_session() as directory:
            journal = await _open_move(directory, tenant_id)
            if journal is None:
                raise MoveError(f"tenant {tenant_id} has no unfinished move")
            if journal.state != COPYING:
                raise MoveError(
                    f"the move of tenant {tenant_id} to shard {journal.to_shard} has switched already: "
                    f"re-run `beep tenants move {tenant_id} --to {journal.to_shard}` to finish it, then move "
                    "it back if you must"
                )
            plan = await self._plan(journal.from_shard, journal.to_shard)
            async with self._connect(journal.to_shard) as target:
                removed = await delete_tenant(target, plan, tenant_id, batch_size=self.batch_size)
            async with self._connect(journal.from_shard) as source:
                await source.execute(_fence(plan, tenant_id, None))
                await source.commit()
            journal.state, journal.finished_at = FAILED, datetime.now(UTC)
            await directory.commit()
        self.progress(f"aborted: {sum(removed.values())} rows removed from shard {journal.to_shard}")
        return journal

    # --- steps ----------------------------------------------------------------------------------------

    async def _begin(self, tenant_id: int, to_shard: int) -> tuple[TenantMove, bool]:
        async with self.database.directory_session() as directory:
            tenant = await directory.get(Tenant, tenant_id)
            if tenant is None:
                raise MoveError(f"no tenant {tenant_id}")
            journal = await _open_move(directory, tenant_id)
            if journal is not None:
                if journal.to_shard != to_shard:
                    raise MoveError(
                        f"tenant {tenant_id} has an unfinished move to shard {journal.to_shard} "
                        f"({journal.state}): finish it with --to {journal.to_shard}, or --abort it"
                    )
                self.progress(f"resuming the move of tenant {tenant_id} ({journal.state})")
                return journal, True
            check_target(tenant.shard, to_shard, self.database.shard_map.logical_shards)
            await self._plan(
                tenant.shard, to_shard
            )  # refuse (unmovable tables, unmigrated shard) unjournalled
            journal = TenantMove(
                tenant_id=tenant_id,
                from_shard=tenant.shard,
                to_shard=to_shard,
                state=COPYING,
                started_at=datetime.now(UTC),
                finished_at=None,
            )
            directory.add(journal)
            await directory.commit()
            self.progress(f"moving tenant {tenant_id} from shard {tenant.shard} to shard {to_shard}")
            return journal, False

    async def _plan(self, source: int, target: int) -> MovePlan:
        found = await self._reflect(source)
        expected = _shape(found)
        actual = _shape(await self._reflect(target))
        if actual != expected:
            raise MoveError(
                f"shards {source} and {target} have different tables or columns: run `beep db upgrade` first"
            )
        return plan_tables(found)

    async def _copy(self, plan: MovePlan, journal: TenantMove) -> None:
        """Bulk copy, then one catch-up pass (so the switch's locked pass has little left to do)."""
        for attempt in ("bulk copy", "catch-up"):
            # The source is read in one snapshot: its tables are read one after another while the worker
            # keeps writing rows that reference others (a search document names a message), and a child
            # read later than its parent would break the target's foreign keys.
            snapshot = self._connect(journal.from_shard, snapshot=True)
            async with snapshot as source, self._connect(journal.to_shard) as target:
                result = await sync(source, target, plan, journal.tenant_id, batch_size=self.batch_size)
                if not result.rows.get(TENANT_TABLE):
                    raise MoveError(f"tenant {journal.tenant_id} has no row on shard {journal.from_shard}")
                await target.commit()
                await source.rollback()
            self.progress(f"{attempt}: {result.changes} rows written ({_total(result.rows)} rows in tenant)")

    async def _switch(self, plan: MovePlan, journal: TenantMove, report: MoveReport) -> None:
        """Under the source's lock: one digest scan of the source, the delta, a key check of the target
        and the commits. The target's digests and most relocations are prepared before the lock (the target
        is written by the mover alone, and the directory's rows stay invisible until its commit)."""
        tenant_id, to_shard = journal.tenant_id, journal.to_shard
        async with (
            self._connect(journal.from_shard) as source,
            self._connect(to_shard) as target,
            self.database.directory_session() as directory,
        ):
            before = await all_digests(target, plan, tenant_id)
            prepared = _relocatable(plan, before, to_shard)
            await directory.execute(sa.delete(Relocation).where(Relocation.tenant_id == tenant_id))
            await self._relocate(directory, tenant_id, to_shard, prepared)

            paused = time.monotonic()
            await _lock_tenant(source, plan, tenant_id)
            result = await sync(
                source, target, plan, tenant_id, batch_size=self.batch_size, target_digests=before
            )
            copied = await keys(target, plan, tenant_id)
            differing = [t.name for t in plan.tables if copied[t.name] != set(result.digests[t.name])]
            if differing:
                raise MoveError(f"verification failed: {differing} differ between the copies; not switched")
            await target.execute(_fence(plan, tenant_id, None))  # the copy goes live
            await target.commit()
            moved = _relocatable(plan, result.digests, to_shard)
            await self._relocate(directory, tenant_id, to_shard, moved - prepared)
            for batch in batches(sorted(prepared - moved), self.batch_size):
                await directory.execute(sa.delete(Relocation).where(Relocation.entity_id.in_(batch)))
            await directory.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(shard=to_shard))
            await directory.execute(
                sa.update(TenantMove).where(TenantMove.id == journal.id).values(state=SWITCHED)
            )
            # The source's fence first: if the directory commit failed after it, the tenant's writes would
            # fail (not go astray) until this command is re-run.
            await source.execute(_fence(plan, tenant_id, to_shard))
            await source.commit()
            await directory.commit()
            report.pause_seconds = time.monotonic() - paused
        report.rows, report.caught_up, report.relocations = result.rows, result.changes, len(moved)
        self.progress(
            f"switched: {_total(result.rows)} rows verified, {result.changes} caught up under the lock, "
            f"writes paused {report.pause_seconds * 1000:.0f} ms"
        )

    async def _relocate(self, directory: AsyncSession, tenant_id: int, shard: int, ids: set[int]) -> None:
        for batch in batches(sorted(ids), self.batch_size):
            rows = [{"entity_id": i, "tenant_id": tenant_id, "shard": shard} for i in batch]
            await directory.execute(sa.insert(Relocation), rows)

    async def _finish(self, plan: MovePlan, journal: TenantMove) -> int:
        async with self._connect(journal.from_shard) as source:
            deleted = await delete_tenant(source, plan, journal.tenant_id, batch_size=self.batch_size)
        async with self.database.directory_session() as directory:
            await directory.execute(
                sa.update(TenantMove)
                .where(TenantMove.id == journal.id)
                .values(state=DONE, finished_at=datetime.now(UTC))
            )
            await directory.commit()
        self.progress(f"done: {_total(deleted)} rows deleted from shard {journal.from_shard}")
        return _total(deleted)

    # --- helpers ----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _exclusive(self, tenant_id: int) -> AsyncIterator[None]:
        """One mover per tenant: a PostgreSQL advisory lock on the tenant's id, held by a directory
        connection for the whole run. (Embedded SQLite moves are offline: one operator, no lock.)"""
        engine = self.database.directory_engine
        if engine.dialect.name != "postgresql":
            yield
            return
        async with engine.connect() as conn:
            if not await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(tenant_id))):
                raise MoveError(f"another `beep tenants move` of tenant {tenant_id} is running")
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(tenant_id)))
                await conn.commit()

    async def _settle(self, why: str) -> None:
        if self.settle_seconds > 0:
            self.progress(f"waiting {self.settle_seconds:g} s {why}")
            await asyncio.sleep(self.settle_seconds)

    def _connect(self, shard: int, *, snapshot: bool = False) -> _ShardConnection:
        return _ShardConnection(self.database, shard, snapshot=snapshot)

    async def _reflect(self, shard: int) -> sa.MetaData:
        location = self.database.location(shard)
        metadata = sa.MetaData()
        async with self.database.engine(location.url).connect() as conn:
            await conn.run_sync(lambda sync_conn: metadata.reflect(sync_conn, schema=location.schema))
        return metadata


class _ShardConnection:
    """A connection to one logical shard (its schema translated), rolled back if left uncommitted.
    `snapshot`: every statement of its transaction reads the same snapshot (REPEATABLE READ on
    PostgreSQL; an SQLite transaction reads one snapshot anyway, and embedded moves are offline)."""

    def __init__(self, database: Database, shard: int, *, snapshot: bool = False) -> None:
        self._engine = database.shard_engine(shard)
        self._snapshot = snapshot
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        self._conn = await self._engine.connect()
        if self._snapshot and self._conn.dialect.name == "postgresql":
            await self._conn.execution_options(isolation_level="REPEATABLE READ")
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        await self._conn.close()


async def _open_move(directory: AsyncSession, tenant_id: int) -> TenantMove | None:
    return await directory.scalar(
        sa.select(TenantMove).where(TenantMove.tenant_id == tenant_id, TenantMove.state.in_(UNFINISHED))
    )


async def _lock_tenant(source: AsyncConnection, plan: MovePlan, tenant_id: int) -> None:
    """Block the tenant's writers: its row FOR UPDATE on PostgreSQL (they take it FOR KEY SHARE); on
    SQLite, which has no row locks, the database's write lock (a no-op UPDATE)."""
    servers = plan.table(TENANT_TABLE).table
    row = servers.c.id == tenant_id
    if source.dialect.name == "postgresql":
        await source.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        try:
            found = await source.scalar(sa.select(servers.c.id).where(row).with_for_update())
        except DBAPIError as error:
            raise MoveError(
                f"the tenant's writers held it for more than {LOCK_TIMEOUT}: nothing switched, run this again"
            ) from error
    else:
        updated = await source.execute(
            sa.update(servers)
            .where(servers.c.id == tenant_id)
            .values(id=servers.c.id)
            .returning(servers.c.id)
        )
        found = updated.scalar()
    if found is None:
        raise MoveError(f"tenant {tenant_id} has no row on its source shard")


def _fence(plan: MovePlan, tenant_id: int, to_shard: int | None) -> sa.Update:
    servers = plan.table(TENANT_TABLE).table
    return sa.update(servers).where(servers.c.id == tenant_id).values(moved_to=to_shard)


def _relocatable(plan: MovePlan, found: Digests, to_shard: int) -> set[int]:
    """IDs of rows found by their own ID that name another shard than the one they move to (a set: the
    @everyone role shares its server's ID)."""
    return {
        key[0] for t in plan.tables if t.relocatable for key in found[t.name] if shard_of(key[0]) != to_shard
    }


def _shape(metadata: sa.MetaData) -> dict[str, frozenset[str]]:
    return {t.name: frozenset(t.columns.keys()) for t in metadata.tables.values()}


def _total(counts: dict[str, int]) -> int:
    return sum(counts.values())
