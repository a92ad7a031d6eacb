"""What a statement costs the client, by layer: `python -m bench.statement_cost [--rounds 3000]`.

The send path runs its statements through SQLAlchemy's ORM session (db/engines.py). This measures the
client CPU of the same one-row read on a real PostgreSQL (the test harness's, durable settings) through
three layers: an ORM `AsyncSession`, a Core `AsyncConnection`, and asyncpg alone; each as one statement in
its own transaction, and as three in one. The difference is what a driver-level path would save per
transaction and per statement. Writes bench/results/<date>-statement-cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.procs import machine_facts
from bench.run import RESULTS
from tests.harness.services import PostgresServer

_TABLE = sa.Table(
    "t", sa.MetaData(), sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("name", sa.Text)
)
_READ = sa.select(_TABLE.c.name).where(_TABLE.c.id == sa.bindparam("id"))


async def _measure(rounds: int) -> dict[str, dict[str, float]]:
    server = PostgresServer().start()
    try:
        url = server.create_database("statement_cost")
        engine = create_async_engine(url, pool_size=2)
        async with engine.begin() as connection:
            await connection.run_sync(_TABLE.metadata.create_all)
            await connection.execute(sa.insert(_TABLE), [{"id": i, "name": f"u{i}"} for i in range(1000)])
        dsn = url.replace("postgresql+asyncpg", "postgresql")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)

        def through_sqlalchemy(opened: Callable[[], Any]) -> Callable[[int], Callable[[], Awaitable[None]]]:
            """`opened`: an ORM session or a Core connection (both have `scalar` and `commit`)."""

            def make(statements: int) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    async with opened() as session:
                        for _ in range(statements):
                            await session.scalar(_READ, {"id": 5})
                        await session.commit()

                return run

            return make

        orm = through_sqlalchemy(lambda: AsyncSession(engine))
        core = through_sqlalchemy(engine.connect)

        def driver(statements: int) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                async with pool.acquire() as connection, connection.transaction():
                    for _ in range(statements):
                        await connection.fetchval("SELECT name FROM t WHERE id = $1", 5)

            return run

        results: dict[str, dict[str, float]] = {}
        for layer, make in (("orm_session", orm), ("core_connection", core), ("asyncpg", driver)):
            for statements in (1, 3):
                run = make(statements)
                for _ in range(200):  # warm: prepared statements, compiled cache, pool
                    await run()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(rounds):
                    await run()
                results[f"{layer}_{statements}"] = {
                    "cpu_us_per_transaction": round(1e6 * (time.process_time() - cpu) / rounds, 1),
                    "wall_us_per_transaction": round(1e6 * (time.perf_counter() - wall) / rounds, 1),
                }
        await pool.close()
        await engine.dispose()
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("BEEP_TEST_PG_DURABLE", "1")  # as every benchmark: PostgreSQL's durable defaults
    results = asyncio.run(_measure(args.rounds))
    for layer in ("orm_session", "core_connection", "asyncpg"):
        one, three = results[f"{layer}_1"], results[f"{layer}_3"]
        per_statement = (three["cpu_us_per_transaction"] - one["cpu_us_per_transaction"]) / 2
        results[layer] = {"cpu_us_per_further_statement": round(per_statement, 1)}
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "rounds": args.rounds,
        "results": results,
    }
    path = RESULTS / f"{datetime.now(UTC).date()}-statement-cost.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
