"""When a process of `beep dev` dies, the console says which, how, and what it logged last; the command
exits non-zero (it used to stop without a word, only var/router.log knowing why)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.harness.dev import start_dev
from tests.harness.ports import free_port

pytestmark = pytest.mark.embedded


async def test_a_killed_router_is_reported_and_beep_dev_fails() -> None:
    # Given beep dev running
    run = start_dev(["--port", str(free_port())], {"BEEP_PORT": str(free_port())})
    try:
        await asyncio.to_thread(run.wait_ready)
        router = run.router_pid()

        # When its router dies
        os.kill(router, signal.SIGKILL)

        # Then beep dev stops with a non-zero status, naming the router, how it ended, and its log's end
        assert await asyncio.to_thread(run.wait_exit) != 0
        console = run.console
        assert f"Beep stopped: the router (process {router}) was killed by SIGKILL" in console, console
        last_logged = (run.data_dir / "router.log").read_text().splitlines()[-1]
        assert f"  {last_logged}" in console.split("Beep stopped:", 1)[1], console
    finally:
        await asyncio.to_thread(run.stop)


async def test_a_router_that_cannot_start_is_reported() -> None:
    # Given a router setting the router refuses (it stops at start-up)
    env = {"BEEP_PORT": str(free_port()), "BEEP_ROUTER_MAX_DEPTH": "deep"}
    run = start_dev(["--port", str(free_port())], env)
    try:
        # Then beep dev fails, saying the router exited before it was ready, and why (the router's words)
        assert await asyncio.to_thread(run.wait_exit, 120) != 0
        console = run.console
        assert "Beep is running" not in console
        assert "the router" in console and "exited with code" in console and "before it was ready" in console
        assert "BEEP_ROUTER_MAX_DEPTH must be a non-negative integer" in console, console
    finally:
        await asyncio.to_thread(run.stop)
