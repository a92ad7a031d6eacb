"""The `beep` command: run Beep, migrate and back up its databases, keep the API contract current."""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from subgraphs.kernel import heap
from subgraphs.kernel.settings import SUBGRAPH_NAMES, Settings, UnusableSettings


def _db_upgrade(settings: Settings) -> int:
    from db.engines import Database
    from db.migrate import upgrade

    async def run() -> int:
        database = Database(settings.resolved_directory_url, settings.shard_map)
        try:
            return await upgrade(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _tenants(settings: Settings, args: argparse.Namespace) -> int:
    """`beep tenants move`: progress on stderr, the report as one JSON object on stdout."""
    import json

    from db.engines import Database
    from db.ids import configure_logical_shards
    from db.tenant_move import MoveError, TenantMover

    embedded = any(
        u.startswith("sqlite") for u in [settings.resolved_directory_url, *settings.shard_map.physical_urls()]
    )
    if embedded and not args.offline:
        print(
            "beep tenants move: embedded storage (SQLite) has no row locks to fence writers with: stop Beep, "
            "then run this again with --offline",
            file=sys.stderr,
        )
        return 2

    async def run() -> dict[str, object]:
        configure_logical_shards(settings.logical_shards)
        database = Database(settings.resolved_directory_url, settings.shard_map)
        mover = TenantMover(
            database,
            settle_seconds=0.0 if args.offline else args.settle_seconds,
            batch_size=args.batch_size,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        try:
            if args.abort:
                journal = await mover.abort(args.tenant_id)
                return {"tenant_id": journal.tenant_id, "state": journal.state}
            return (await mover.move(args.tenant_id, args.to)).as_dict()
        finally:
            await database.dispose()

    if not args.abort and args.to is None:
        print("beep tenants move: --to SHARD (or --abort) is required", file=sys.stderr)
        return 2
    try:
        print(json.dumps(asyncio.run(run())))
    except MoveError as error:
        print(f"beep tenants move: {error}", file=sys.stderr)
        return 1
    return 0


def _search(settings: Settings, args: argparse.Namespace) -> int:
    """`beep search reindex --channel ID | --server ID`: rebuild documents from the messages table."""
    from db.ids import configure_logical_shards, parse_id
    from subgraphs.kernel.web.runtime import Runtime
    from subgraphs.messages.search.backends import backend_for
    from subgraphs.messages.search.indexer import reindex, server_of_channel

    wanted = parse_id(args.channel or args.server or "")
    if wanted is None:
        print("beep search reindex: --channel or --server needs a valid ID", file=sys.stderr)
        return 2

    async def run() -> int:
        configure_logical_shards(settings.logical_shards)
        runtime = Runtime.create(settings)
        try:
            backend = backend_for(settings)
            if args.server:
                return await reindex(runtime.database, runtime.bus, backend, server_id=wanted)
            server_id = await server_of_channel(runtime.database, runtime.bus, wanted)
            if server_id is None:  # no messages (or no such channel): nothing to index, nothing indexed
                return 0
            return await reindex(
                runtime.database, runtime.bus, backend, server_id=server_id, channel_id=wanted
            )
        finally:
            await runtime.close()

    print(f"reindexed {asyncio.run(run())} messages")
    return 0


# Idle keep-alive connections stay open longer than the router's pool keeps them: when the server closed
# first (uvicorn's default is 5 s), a request the router sent at that moment failed as "Unexpected error"
# (intermittent, under load).
KEEP_ALIVE_SECONDS = 75


def _serve(settings: Settings, name: str, host: str, port: int) -> None:
    from beep.registry import all_definitions, definition
    from beep.worker import running_worker
    from subgraphs.kernel.web.app import configure_process, create_app

    try:
        if name == "all":  # the embedded mode: the worker (outbox relay) runs in this process too
            background = functools.partial(running_worker, port=port)
            app = create_app(all_definitions(), settings, mounted=True, background=background)
        else:
            app = create_app([definition(name)], settings, mounted=False)
    except UnusableSettings as error:
        raise SystemExit(f"beep serve {name}: {error}") from None
    configure_process(settings, name)
    heap.settle_after_start()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        ws="websockets-sansio",
        # Only the router opens WebSockets here, on the cluster's network: compressing every event buys
        # nothing there, and costs a compression context per connection on both ends (no CPU change
        # measured either way, bench/README.md).
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _work(settings: Settings, host: str, port: int) -> None:
    from beep.worker import create_worker_app
    from subgraphs.kernel.web.app import configure_process

    configure_process(settings, "worker")
    heap.settle_after_start()
    uvicorn.run(create_worker_app(settings, port), host=host, port=port, log_config=None, lifespan="on")


def dev_settings(settings: Settings, router_port: int | None) -> Settings:
    """`beep dev`'s: the router on `router_port` (the public URL, so webhook and file URLs, follow it), and
    logs as readable lines for the person at the terminal unless BEEP_LOG_FORMAT says otherwise."""
    overrides: dict[str, Any] = {}
    if router_port:
        overrides["router_port"] = router_port
    if "log_format" not in settings.model_fields_set:
        overrides["log_format"] = "text"
    return Settings(**overrides) if overrides else settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="beep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "dev", help="run everything embedded (SQLite, in-process bus) behind the router"
    )
    dev.add_argument("--port", type=int, default=None, help="router port (default BEEP_ROUTER_PORT or 4000)")

    serve = commands.add_parser("serve", help="serve one subgraph (full mode) or all of them mounted")
    serve.add_argument("subgraph", choices=[*SUBGRAPH_NAMES, "all"])
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)

    worker = commands.add_parser(
        "worker", help="run the outbox relay and event consumers (full mode; embedded runs it in-process)"
    )
    worker.add_argument("--host", default=None)
    worker.add_argument("--port", type=int, default=None, help="health endpoint port (default 4199)")

    db = commands.add_parser("db", help="database operations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations to the directory and every logical shard")

    tenants = commands.add_parser("tenants", help="tenant operations")
    tenant_commands = tenants.add_subparsers(dest="tenants_command", required=True)
    move = tenant_commands.add_parser(
        "move", help="move a tenant (a server and everything in it) to another logical shard, online"
    )
    move.add_argument("tenant_id", type=int, help="the server's id")
    move.add_argument("--to", type=int, default=None, metavar="SHARD", help="the logical shard to move it to")
    move.add_argument(
        "--abort", action="store_true", help="give up an unfinished copy (deletes the target copy)"
    )
    move.add_argument(
        "--settle-seconds",
        type=float,
        default=5.0,
        help="wait after journalling and after switching, longer than the locator's 2 s refresh (default 5)",
    )
    move.add_argument("--batch-size", type=int, default=1000, help="rows per statement (default 1000)")
    move.add_argument(
        "--offline", action="store_true", help="Beep is stopped: no waits (required on SQLite, embedded mode)"
    )

    from beep.backup.cli import add_parser as add_backup_parser

    add_backup_parser(commands)

    search = commands.add_parser("search", help="message search")
    search_commands = search.add_subparsers(dest="search_command", required=True)
    reindex = search_commands.add_parser("reindex", help="rebuild a channel's or a server's search documents")
    target = reindex.add_mutually_exclusive_group(required=True)
    target.add_argument("--channel", help="a channel ID")
    target.add_argument("--server", help="a server ID")

    from beep import logs

    logs.add_parser(commands)

    sg = commands.add_parser("supergraph", help="the API contract (subgraph SDLs and the supergraph)")
    sg_commands = sg.add_subparsers(dest="sg_command", required=True)
    sg_commands.add_parser("export", help="write each subgraph's SDL from code")
    sg_commands.add_parser("compose", help="export, then compose supergraph/supergraph.graphql")
    sg_commands.add_parser("check", help="fail if the committed SDLs or supergraph are stale")

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"beep: invalid settings: {error}", file=sys.stderr)
        return 2

    if args.command == "db":
        count = _db_upgrade(settings)
        print(f"directory and {count} logical shards are at the latest revision")
        return 0
    if args.command == "tenants":
        return _tenants(settings, args)
    if args.command == "search":
        return _search(settings, args)
    if args.command == "backup":
        from beep.backup.cli import main as backup_main

        return backup_main(settings, args)
    if args.command == "logs":
        return logs.run(settings, args)
    if args.command == "supergraph":
        from beep import supergraph

        if args.sg_command == "export":
            for path in supergraph.export():
                print(path)
            return 0
        return supergraph.compose() if args.sg_command == "compose" else supergraph.check()
    if args.command == "serve":
        from beep.registry import default_port

        if args.subgraph == "all" and args.port:  # where it listens is where its issuer is (the default)
            settings = Settings(port=args.port)
        port = args.port or (settings.port if args.subgraph == "all" else default_port(args.subgraph))
        _serve(settings, args.subgraph, args.host or settings.host, port)
        return 0
    if args.command == "worker":
        _work(settings, args.host or settings.host, args.port or 4199)
        return 0
    if args.command == "dev":
        from beep.dev import run_dev

        return run_dev(dev_settings(settings, args.port))
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
