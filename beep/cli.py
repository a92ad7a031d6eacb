"""The `beep` command: run Beep, migrate its databases, keep the API contract current."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvicorn

from subgraphs.kernel.settings import SUBGRAPH_NAMES, Settings


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


def _serve(settings: Settings, name: str, host: str, port: int) -> None:
    from beep.registry import all_definitions, definition
    from subgraphs.kernel.app import configure_process, create_app

    if name == "all":
        app = create_app(all_definitions(), settings, mounted=True)
    else:
        app = create_app([definition(name)], settings, mounted=False)
    configure_process(settings, name)
    uvicorn.run(app, host=host, port=port, log_config=None, ws="websockets-sansio", lifespan="on")


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

    db = commands.add_parser("db", help="database operations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations to the directory and every logical shard")

    sg = commands.add_parser("supergraph", help="the API contract (subgraph SDLs and the supergraph)")
    sg_commands = sg.add_subparsers(dest="sg_command", required=True)
    sg_commands.add_parser("export", help="write each subgraph's SDL from code")
    sg_commands.add_parser("compose", help="export, then compose supergraph/supergraph.graphql")
    sg_commands.add_parser("check", help="fail if the committed SDLs or supergraph are stale")

    args = parser.parse_args(argv)
    settings = Settings()

    if args.command == "db":
        count = _db_upgrade(settings)
        print(f"directory and {count} logical shards are at the latest revision")
        return 0
    if args.command == "supergraph":
        from beep import supergraph

        if args.sg_command == "export":
            for path in supergraph.export():
                print(path)
            return 0
        return supergraph.compose() if args.sg_command == "compose" else supergraph.check()
    if args.command == "serve":
        from beep.registry import default_port

        port = args.port or (settings.port if args.subgraph == "all" else default_port(args.subgraph))
        _serve(settings, args.subgraph, args.host or settings.host, port)
        return 0
    if args.command == "dev":
        from beep.dev import run_dev

        return run_dev(settings, router_port=args.port or settings.router_port)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
