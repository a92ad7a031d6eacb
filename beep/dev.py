"""`beep dev`: the embedded mode — every subgraph in this process, SQLite, in-process bus, built-in
issuer — with the router in front. Prints where GraphiQL is."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import uvicorn

from beep.registry import all_definitions
from beep.router import router_env, start_router, wait_ready
from beep.worker import running_worker
from db.engines import Database
from db.migrate import upgrade
from subgraphs.kernel.settings import SUBGRAPH_NAMES, Settings, UnusableSettings
from subgraphs.kernel.web.app import configure_process, create_app


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
    env["BEEP_LOG_TOKEN_KEY"] = settings.resolved_log_token_key  # the router's tokens match the app's
    if settings.log_format == "text" and "BEEP_ROUTER_LOG_FORMAT" not in env:
        env |= {"BEEP_ROUTER_LOG_FORMAT": "pretty", "NO_COLOR": "1"}  # readable; no colour codes in a file
    router_log = settings.data_dir / "router.log"
    router = start_router(env, log_file=router_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stop_task = asyncio.create_task(stop.wait())
    try:
        ready = asyncio.create_task(asyncio.to_thread(_until_ready, router_port, router))
        await asyncio.wait({ready, stop_task, serve_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        if serve_task.done():
            return _server_stopped(serve_task)
        if not ready.result():
            return _router_stopped(router, router_log, "before it was ready")
        print(
            f"\nBeep is running (embedded mode, data in {settings.data_dir.resolve()}).\n"
            f"  GraphiQL:  http://localhost:{router_port}/graphql\n"
            f"  API:       http://localhost:{router_port}/graphql  (HTTP, WebSocket graphql-transport-ws)\n"
            f"  Router log: {router_log}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        waiter = asyncio.create_task(asyncio.to_thread(router.wait))
        await asyncio.wait({waiter, stop_task, serve_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        if waiter.done():
            return _router_stopped(router, router_log, "while Beep was running")
        return _server_stopped(serve_task)
    finally:
        stop_task.cancel()
        _terminate(router)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serve_task


def _until_ready(port: int, router: subprocess.Popen[bytes]) -> bool:
    """Whether the router became ready (False: it exited first, or took too long)."""
    try:
        wait_ready(f"http://127.0.0.1:{port}/readiness", process=router)
    except (RuntimeError, TimeoutError):
        return False
    return True


def _router_stopped(router: subprocess.Popen[bytes], log: Path, when: str) -> int:
    """Says on the console that the router died (or never became ready), how, and what it logged last."""
    code = router.poll()
    if code is None:
        how = "was not ready in time"
    elif code < 0:
        how = f"was killed by {signal.Signals(-code).name} {when}"
    else:
        how = f"exited with code {code} {when}"
    _say(f"Beep stopped: the router (process {router.pid}) {how}.\nThe end of {log}:\n{tail(log)}")
    return 1


def _server_stopped(serve_task: asyncio.Task[None]) -> int:
    error = None if serve_task.cancelled() else serve_task.exception()
    why = f": {error!r}" if error is not None else " (its log is above)"
    _say(f"Beep stopped: the subgraphs' server (in this process) stopped{why}.")
    return 1


def _say(message: str) -> None:
    print(f"\n{message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, indented (read from its end: the file only grows)."""
    try:
        with path.open("rb") as file:
            file.seek(max(file.seek(0, os.SEEK_END) - 64 * 1024, 0))
            text = file.read().decode(errors="replace")
    except OSError as error:
        return f"  (cannot read it: {error})"
    last = text.splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in last) if last else "  (empty)"


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_dev(settings: Settings) -> int:
    return asyncio.run(_run(settings))
