"""`beep dev` run as a user runs it: the command in a fresh data directory, its console kept in a file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

READY = "Beep is running"


@dataclass
class DevRun:
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def data_dir(self) -> Path:
        return self.workdir / "var"

    @property
    def console(self) -> str:
        """Everything `beep dev` printed (stdout and stderr) so far."""
        return (self.workdir / "console.log").read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while READY not in self.console:
            if self.process.poll() is not None:
                raise AssertionError(f"beep dev exited with {self.process.returncode}:\n{self.console}")
            if time.monotonic() > deadline:
                raise AssertionError(f"beep dev was not ready within {timeout:.0f}s:\n{self.console}")
            time.sleep(0.2)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"beep dev did not exit within {timeout:.0f}s:\n{self.console}") from error

    def router_pid(self) -> int:
        """The router, the child process `beep dev` started (Node, running hive-gateway)."""
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"hive-gateway" in cmdline:
                    return int(pid)
        raise AssertionError(f"beep dev has no router process:\n{self.console}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not os.environ.get("BEEP_KEEP_TEST_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_dev(args: list[str], env: dict[str, str] | None = None) -> DevRun:
    """`beep dev ARGS` with `env` added to a clean environment (none of the caller's BEEP_* settings), its
    data under a fresh directory (as ./var would be in a checkout)."""
    workdir = Path(tempfile.mkdtemp(prefix="beep-dev-"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BEEP_")}
    environment |= {"BEEP_DATA_DIR": str(workdir / "var"), "PYTHONUNBUFFERED": "1", **(env or {})}
    console = open(workdir / "console.log", "wb")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "beep.cli", "dev", *args],
        env=environment,
        cwd=workdir,
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    console.close()
    return DevRun(workdir, process)
