"""A PostgreSQL primary with a synchronous streaming replica, for failover drills (Debian's binaries).

The replica is a `pg_basebackup -R` copy of the primary that streams its WAL; `synchronous_standby_names
= '*'` with `synchronous_commit = on` makes every commit wait until the replica has it, so a message the
primary acknowledged survives the primary's loss (the design's "no data lost in an outage"). Beep reaches
the pair through one multi-host URL with `target_session_attrs=read-write`: whichever host is primary.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.services import PostgresServer, _as_postgres_user, _postgres_bindir

_PRIMARY_OPTIONS = "-c synchronous_commit=on -c synchronous_standby_names='*' -c wal_level=replica"


@dataclass
class ReplicatedPostgres:
    primary: PostgresServer = field(default_factory=lambda: PostgresServer(extra_options=_PRIMARY_OPTIONS))
    replica_port: int = field(default_factory=free_port)
    replica_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beep-pg-replica-")))
    replica_started: bool = False

    @property
    def replica_datadir(self) -> Path:
        return self.replica_root / "data"

    def start(self) -> ReplicatedPostgres:
        self.primary.start()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.replica_root, pw.pw_uid, pw.pw_gid)
        bindir = _postgres_bindir()
        backup = [str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port)]
        backup += ["-U", "postgres", "-D", str(self.replica_datadir), "-R", "-X", "stream", "--no-sync"]
        subprocess.run(_as_postgres_user(backup), check=True, capture_output=True)
        options = f"-p {self.replica_port} -k {self.replica_root} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=300 -c fsync=off -c full_page_writes=off"
        # Promoted, it has no standby of its own, so it names none to wait for (commits would hang).
        options += " -c synchronous_commit=on"
        start = [str(bindir / "pg_ctl"), "-D", str(self.replica_datadir), "-o", options]
        start += ["-l", str(self.replica_root / "postgres.log"), "-w", "start"]
        subprocess.run(_as_postgres_user(start), check=True, capture_output=True)
        self.replica_started = True
        self._wait_streaming()
        return self

    def _psql(self, port: int, sql: str) -> str:
        command = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-At", "-c", sql]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()

    def _wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._psql(self.primary.port, "SELECT sync_state FROM pg_stat_replication") == "sync":
                return
            time.sleep(0.2)
        raise RuntimeError("the replica did not start streaming synchronously")

    def create_database(self, name: str) -> str:
        """A database on the primary (replicated), as a URL naming both hosts: Beep uses whichever is
        writable."""
        self.primary.create_database(name)
        hosts = f"host=127.0.0.1:{self.primary.port}&host=127.0.0.1:{self.replica_port}"
        return f"postgresql+asyncpg://postgres@/{name}?{hosts}&target_session_attrs=read-write"

    def crash_primary(self) -> None:
        """The primary's host is lost: its server stops at once, without a shutdown checkpoint."""
        stop = [
            str(_postgres_bindir() / "pg_ctl"),
            "-D",
            str(self.primary.datadir),
            "-m",
            "immediate",
            "stop",
        ]
        subprocess.run(_as_postgres_user(stop), check=True, capture_output=True)
        self.primary.process_started = False

    def promote_replica(self) -> None:
        """What the HA manager (CloudNativePG, Patroni) does next."""
        promote = [str(_postgres_bindir() / "pg_ctl"), "-D", str(self.replica_datadir), "-w", "promote"]
        subprocess.run(_as_postgres_user(promote), check=True, capture_output=True)

    def stop(self) -> None:
        if self.replica_started:
            stop = [str(_postgres_bindir() / "pg_ctl"), "-D", str(self.replica_datadir), "-m", "immediate"]
            subprocess.run(_as_postgres_user([*stop, "stop"]), capture_output=True)
        shutil.rmtree(self.replica_root, ignore_errors=True)
        self.primary.stop()
