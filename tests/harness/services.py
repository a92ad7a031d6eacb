"""Real PostgreSQL and Redis servers for the test run, on loopback, in temporary directories.

The binaries come from Debian's packages (scripts/test installs them when absent). Each run gets its own
server processes and databases, removed afterwards; nothing is assumed to be running.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.ports import free_port


class ServiceUnavailable(RuntimeError):
    pass


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise ServiceUnavailable("PostgreSQL server binaries not found: run scripts/test (it installs them)")
    return Path(candidates[0]).parent


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI and the sandbox run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beep-pg-")))
    process_started: bool = False
    # Benchmarks measure with PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes
    # on): BEEP_TEST_PG_DURABLE=1. Tests trade durability for speed.
    durable: bool = field(default_factory=lambda: os.environ.get("BEEP_TEST_PG_DURABLE") == "1")
    # More `-c name=value` server settings, applied last (replication: tests/harness/replication.py;
    # benchmarks: BEEP_TEST_PG_OPTIONS, bench/run.py).
    extra_options: str = field(default_factory=lambda: os.environ.get("BEEP_TEST_PG_OPTIONS", ""))

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def start(self) -> PostgresServer:
        bindir = _postgres_bindir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            _as_postgres_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += f" {self.extra_options}" if self.extra_options else ""
        subprocess.run(
            _as_postgres_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "postgres.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.process_started = True
        return self

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process_started:
            subprocess.run(
                _as_postgres_user(
                    [str(_postgres_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]
                ),
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server not found: run scripts/test (it installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if probe.stdout.strip() == "PONG":
                return self
            time.sleep(0.1)
        raise ServiceUnavailable("redis-server did not answer PING")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class S3Server:
    """An S3-compatible server for the tests: moto's server mode (PyPI `moto[s3]` + Flask, a dev
    dependency), in-memory, on loopback. It speaks the S3 REST API that production stores (AWS S3,
    MinIO, Ceph, R2...) speak; Beep's S3Storage is pointed at it like at any of them."""

    port: int = field(default_factory=free_port)
    bucket: str = "beep-media-test"
    process: subprocess.Popen[bytes] | None = None
    access_key_id: str = "beep-test"
    secret_access_key: str = "beep-test-secret"  # moto accepts any credentials

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The `BEEP_*` settings that point a Beep process at this server."""
        return {
            "BEEP_MEDIA_STORAGE": "s3",
            "BEEP_S3_ENDPOINT_URL": self.endpoint_url,
            "BEEP_S3_BUCKET": self.bucket,
            "BEEP_S3_REGION": "us-east-1",
            "BEEP_S3_ACCESS_KEY_ID": self.access_key_id,
            "BEEP_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def start(self) -> S3Server:
        import sys
        import urllib.request

        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceUnavailable("moto's S3 server exited at start (is moto[s3] installed?)")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise ServiceUnavailable("moto's S3 server did not start")
        request = urllib.request.Request(f"{self.endpoint_url}/{self.bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
