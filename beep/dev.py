"""`beep dev`: the embedded mode — every subgraph in this process, SQLite, in-process bus, built-in
issuer — with the router in front. Prints where GraphiQL is."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import subprocess

import uvicorn

from beep.registry import all_definitions
from beep.router import router_env, start_router, wait_ready
from beep.worker import running_worker
from db.engines import Database
from db.migrate import upgrade
from subgraphs.kernel.app import configure_process, create_app
from subgraphs.kernel.settings import SUBGRAPH_NAMES, Settings, UnusableSettings


def embedded_subgraph_urls(host: str, port: int) -> dict[str, str]:
    return {name: f"http://{host}:{port}/{name}/graphql" for name in SUBGRAPH_NAMES}


async def _migrate(settings: Settings) -> None:
    database = Database(settings.resolved_directory_url, settings.shard_map)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


async def _run(settings: Settings) -> int:
    router_port = settings.router_port
    configure_process(settings, "dev")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await _migrate(settings)
    background = functools.partial(running_worker, port=settings.port)
    try:
        app = create_app(all_definitions(), settings, mounted=True, background=background)
    except UnusableSettings as error:
        print(f"Beep cannot start: {error}", flush=True)
        return 1
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            ws="websockets-sansio",
            timeout_keep_alive=75,  # longer than the router keeps idle connections (see beep/cli.py)
        )
    )
    serve_task = asyncio.create_task(server.serve())
    while not server.started:
        if serve_task.done():
            print(f"Beep could not listen on {settings.host}:{settings.port} (set BEEP_PORT).", flush=True)
            return 1
        await asyncio.sleep(0.05)

    env = router_env(
        port=router_port,
        subgraph_urls=embedded_subgraph_urls(settings.host, settings.port),
        jwks_url=settings.resolved_jwks_url,
        issuer=settings.resolved_issuer_url,
        audience=settings.jwt_audience,
        internal_secret=settings.resolved_internal_secret,
    )
    router = start_router(env, log_file=settings.data_dir / "router.log")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{router_port}/readiness", process=router)
        print(
            f"\nBeep is running (embedded mode, data in {settings.data_dir.resolve()}).\n"
            f"  GraphiQL:  http://localhost:{router_port}/graphql\n"
            f"  API:       http://localhost:{router_port}/graphql  (HTTP, WebSocket graphql-transport-ws)\n"
            f"  Router log: {settings.data_dir / 'router.log'}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        waiter = asyncio.create_task(asyncio.to_thread(router.wait))
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stop_task, serve_task}, return_when=asyncio.FIRST_COMPLETED)
        return 0 if stop.is_set() else 1
    finally:
        _terminate(router)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serve_task


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_dev(settings: Settings) -> int:
    return asyncio.run(_run(settings))
