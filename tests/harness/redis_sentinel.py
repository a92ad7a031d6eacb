"""A Redis master, its replica and three Sentinels, for Redis failover drills (Debian's redis-server).

The Sentinels run from the same binary (`redis-server CONF --sentinel`: Debian's redis-sentinel package
only adds a service unit). They watch the master under one name with a quorum of 2, call it down after
a second without an answer, and promote the replica; Beep reaches whichever is master through a
`redis+sentinel://` URL naming the three Sentinels (subgraphs/kernel/redis_client.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.services import ServiceUnavailable

MASTER_NAME = "beep"
DOWN_AFTER_MS = 1000


def _cli(port: int, *args: str) -> str:
    command = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=5).stdout.strip()


def _wait(what: str, check: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise ServiceUnavailable(f"{what} within {seconds:.0f} s")


@dataclass
class SentinelRedis:
    master_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beep-redis-ha-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def _spawn(self, name: str, args: list[str]) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server not found: run scripts/install-services")
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - the process keeps it
        self.processes[name] = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> SentinelRedis:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn("master", ["--port", str(self.master_port), *common, "--dir", str(self.root)])
        _wait("the master answers PING", lambda: _cli(self.master_port, "ping") == "PONG")
        replica = ["--port", str(self.replica_port), *common, "--dir", str(self.root)]
        self._spawn("replica", [*replica, "--replicaof", "127.0.0.1", str(self.master_port)])
        _wait(
            "the replica is in sync",
            lambda: "master_link_status:up" in _cli(self.replica_port, "info", "replication"),
        )
        for port in self.sentinel_ports:
            conf = self.root / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._spawn(f"sentinel-{port}", [str(conf), "--sentinel"])
        for port in self.sentinel_ports:  # each knows the replica and the other two Sentinels
            _wait(
                f"Sentinel {port} sees the replica and its peers",
                lambda port=port: (
                    "num-slaves\n1" in _cli(port, "sentinel", "master", MASTER_NAME)
                    and "num-other-sentinels\n2" in _cli(port, "sentinel", "master", MASTER_NAME)
                ),
                seconds=30,
            )
        return self

    def master_port_now(self) -> int | None:
        """The port the Sentinels call master (the first that answers), or None."""
        for port in self.sentinel_ports:
            answer = _cli(port, "sentinel", "get-master-addr-by-name", MASTER_NAME).split()
            if len(answer) == 2:
                return int(answer[1])
        return None

    def crash_master(self) -> None:
        """SIGKILL: no goodbye to clients or Sentinels, as when a node is lost."""
        process = self.processes["master"]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def wait_promoted(self, seconds: float = 30) -> float:
        """Waits until the Sentinels name the replica master and it accepts writes; the time it took."""
        started = time.monotonic()
        _wait(
            "Sentinel promoted the replica",
            lambda: (
                self.master_port_now() == self.replica_port
                and "role:master" in _cli(self.replica_port, "info", "replication")
            ),
            seconds,
        )
        return time.monotonic() - started

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
