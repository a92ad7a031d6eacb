"""The running Beep stack, started the way an operator would: `beep` processes and the router.

- embedded: one `beep serve all` process (SQLite, in-process bus, built-in issuer) + the router.
- full: PostgreSQL (two physical databases holding 32 logical shards each) + Redis, every subgraph in its
  own process, the messages subgraph twice (two replicas), and two routers — router A reaches messages
  replica 1, router B replica 2 — so a test can prove replicas share events through Redis.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from beep.dev import embedded_subgraph_urls
from beep.router import router_env, start_router, wait_ready
from subgraphs.kernel import logtokens
from subgraphs.kernel.settings import SUBGRAPH_NAMES
from subgraphs.kernel.web import internal
from tests.harness.ports import free_port
from tests.harness.redis_sentinel import SentinelRedis
from tests.harness.replication import ReplicatedPostgres
from tests.harness.services import PostgresServer, RedisServer, S3Server

BEEP = [sys.executable, "-m", "beep.cli"]


@dataclass
class Stack:
    """A running Beep stack; `serving(url)` finds the one a client's URL points at."""

    mode: str
    workdir: Path
    env: dict[str, str]
    router_url: str = ""
    second_router_url: str = ""  # full mode: the router in front of the second messages replica
    subgraph_urls: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    services: list[PostgresServer | ReplicatedPostgres | RedisServer | SentinelRedis | S3Server] = field(
        default_factory=list
    )
    database_urls: list[str] = field(default_factory=list)
    worker_port: int = 0  # full mode: `beep worker` (the outbox relay)
    subgraph_ports: dict[str, int] = field(default_factory=dict)  # full mode: process name -> port
    router_envs: dict[str, dict[str, str]] = field(default_factory=dict)  # router name -> its environment
    routers_beside: list[str] = field(default_factory=list)  # `start_router_beside`'s URLs

    @property
    def internal_headers(self) -> dict[str, str]:
        """What a Beep process sends to call a subgraph directly (subgraphs refuse anyone else)."""
        return {internal.CALLER_HEADER: internal.caller_credential(self.env["BEEP_INTERNAL_SECRET"])}

    def worker_command(self) -> list[str]:
        return [*BEEP, "worker", "--port", str(self.worker_port)]

    def kill(self, name: str) -> None:
        """SIGKILL one process (a crash, not a shutdown): nothing it had in flight gets finished."""
        for process_name, process in self.processes:
            if process_name == name and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        # Killed on purpose: no longer the stack's (a check that every process is alive must not see it).
        self.processes = [(n, p) for n, p in self.processes if n != name]

    def restart_subgraph(self, name: str) -> None:
        """Full mode: SIGKILL a subgraph process (e.g. "messages-2") and start it again on its port."""
        self.kill(name)
        self.start_subgraph(name)

    def start_subgraph(self, name: str) -> None:
        """Full mode: start a subgraph process killed before (`kill`) on its port, and wait until it is up."""
        port = self.subgraph_ports[name]
        process = self.spawn(name, [*BEEP, "serve", name.split("-")[0], "--port", str(port)])
        wait_ready(f"http://127.0.0.1:{port}/healthz", process=process)

    def restart_worker(self) -> None:
        self.kill("worker")
        process = self.spawn("worker", self.worker_command())
        wait_ready(f"http://127.0.0.1:{self.worker_port}/healthz", process=process)

    s3: S3Server | None = None  # full mode keeps files in S3 (moto's server), embedded on local disk

    @property
    def storage_backend(self) -> str:
        return "s3" if self.s3 is not None else "local"

    def stored_keys(self, prefix: str = "") -> set[str]:
        """Every object's storage key (under `prefix`), whichever backend the stack uses."""
        if self.s3 is not None:
            import boto3  # moto's dependency

            client = boto3.client(
                "s3",
                endpoint_url=self.s3.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=self.s3.access_key_id,
                aws_secret_access_key=self.s3.secret_access_key,
            )
            keys: set[str] = set()
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.s3.bucket, Prefix=prefix
            ):
                keys.update(item["Key"] for item in page.get("Contents", []))
            return keys
        root = self.workdir / "data" / "media"
        if not root.exists():
            return set()
        found = set()
        for path in root.rglob("*"):
            if path.is_file() and not path.name.endswith(".json") and not path.name.startswith("."):
                relative = path.relative_to(root).parts  # scope..., two hex digits, object id
                key = "/".join((*relative[:-2], relative[-1]))
                if key.startswith(prefix):
                    found.add(key)
        return found

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
        process = subprocess.Popen(cmd, env=env or self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, process))
        return process

    def start_router(
        self,
        name: str,
        subgraph_urls: dict[str, str],
        jwks_url: str,
        issuer: str,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        port = port or free_port()
        env = router_env(
            port=port,
            subgraph_urls=subgraph_urls,
            jwks_url=jwks_url,
            issuer=issuer,
            audience="beep",
            internal_secret=self.env["BEEP_INTERNAL_SECRET"],
        )
        # The fan-out tier's and tracing's settings, when a test's stack sets them; the logs' token key.
        env |= {
            k: v
            for k, v in self.env.items()
            if k.startswith(("BEEP_FANOUT", "BEEP_OTEL", "BEEP_ROUTER_RUNTIME"))
        }
        env["BEEP_LOG_TOKEN_KEY"] = self.env["BEEP_LOG_TOKEN_KEY"]
        # Prometheus metrics on an internal port of the router's own (router/metrics.ts), as deployed.
        env["BEEP_ROUTER_METRICS_PORT"] = str(free_port())
        env |= extra_env or {}
        self.router_envs[name] = env
        process = start_router(env, log_file=self.workdir / f"{name}.log")
        self.processes.append((name, process))
        wait_ready(f"http://127.0.0.1:{port}/readiness", timeout=90, process=process)
        return f"http://127.0.0.1:{port}/graphql"

    def start_router_beside(self, name: str, extra_env: dict[str, str]) -> str:
        """Another router in front of this stack's subgraphs, configured as the first one but for
        `extra_env`; its GraphQL URL."""
        first = self.router_envs["router"]
        url = self.start_router(
            name, self.subgraph_urls, first["BEEP_JWKS_URL"], first["BEEP_JWT_ISSUER"], extra_env=extra_env
        )
        self.routers_beside.append(url)
        return url

    def restart_router(self, name: str) -> None:
        """SIGKILL a router (its fan-out tier with it), then start it again on its port."""
        env = self.router_envs[name]
        self.kill(name)
        process = start_router(env, log_file=self.workdir / f"{name}.log")
        self.processes.append((name, process))
        wait_ready(f"http://127.0.0.1:{env['BEEP_ROUTER_PORT']}/readiness", timeout=90, process=process)

    def logs(self, tail: int = 40) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        _RUNNING[:] = [s for s in _RUNNING if s is not self]
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for _name, process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for service in self.services:
            service.stop()
        archive = os.environ.get("BEEP_TEST_LOG_ARCHIVE")
        if archive:
            kept = Path(archive) / self.workdir.name
            kept.mkdir(parents=True, exist_ok=True)
            for log in self.workdir.glob("*.log"):
                shutil.copy2(log, kept / log.name)
        if not os.environ.get("BEEP_KEEP_TEST_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)


_RUNNING: list[Stack] = []


def serving(url: str) -> Stack:
    """The running stack whose router serves `url` (http:// or ws://)."""
    address = url.split("://", 1)[-1]
    for stack in _RUNNING:
        routers = [u for u in (stack.router_url, stack.second_router_url, *stack.routers_beside) if u]
        if any(u.split("://", 1)[-1] == address for u in routers):
            return stack
    raise LookupError(f"no running stack serves {url}")


def _base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEP_")}
    env.update(BEEP_DATA_DIR=str(workdir / "data"), BEEP_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    # Shared by the subgraphs and the routers' fan-out tier (kernel/web/internal.py).
    env.update(BEEP_INTERNAL_SECRET=secrets.token_urlsafe(32))
    # Personal data in the logs is tokenised with this key (tests/integration/test_log_privacy.py).
    env.update(BEEP_LOG_TOKEN_KEY=logtokens.generate_key())
    # Tests send bursts (1,000 messages to resume from); the default send limit has its own stack
    # (test_message_rate_limit.py).
    env.update(BEEP_MESSAGE_SEND_LIMIT="100000")
    # Link previews may fetch the tests' local site (tests/harness/preview_site.py); nothing else private.
    env.update(BEEP_PREVIEW_ALLOWED_NETWORKS="127.0.0.1/32")
    # A mutation returning an error code it does not declare fails the test (kernel/web/mutations.py).
    env.update(BEEP_STRICT_ERRORS="1")
    return env


def start_embedded(
    extra_env: dict[str, str] | None = None, extra_issuers: list[tuple[str, str]] | None = None
) -> Stack:
    """`extra_env`/`extra_issuers` ((issuer, JWKS URL) pairs the router trusts too): the Keycloak stack."""
    workdir = Path(tempfile.mkdtemp(prefix="beep-embedded-"))
    port, router_port = free_port(), free_port()
    env = _base_env(workdir) | {
        "BEEP_PORT": str(port),
        "BEEP_ISSUER_URL": f"http://127.0.0.1:{port}/users",
        "BEEP_PUBLIC_URL": f"http://127.0.0.1:{router_port}",  # webhook and file URLs: through the router
    }
    env |= extra_env or {}
    stack = Stack("embedded", workdir, env)
    try:
        subprocess.run([*BEEP, "db", "upgrade"], env=env, check=True, capture_output=True)
        process = stack.spawn("beep-all", [*BEEP, "serve", "all", "--port", str(port)])
        wait_ready(f"http://127.0.0.1:{port}/healthz", process=process)
        stack.subgraph_urls = embedded_subgraph_urls("127.0.0.1", port)
        issuers = [(env["BEEP_ISSUER_URL"], f"{env['BEEP_ISSUER_URL']}/.well-known/jwks.json")]
        issuers += extra_issuers or []
        stack.router_url = stack.start_router(
            "router",
            stack.subgraph_urls,
            ",".join(j for _i, j in issuers),
            ",".join(i for i, _j in issuers),
            port=router_port,
        )
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        stack.stop()
        raise
    _RUNNING.append(stack)
    return stack


def start_full(
    database: PostgresServer | ReplicatedPostgres | None = None,
    extra_env: dict[str, str] | None = None,
    redis: RedisServer | SentinelRedis | None = None,
) -> Stack:
    """`database`: where the directory and shards live (a primary with a replica for failover drills);
    `extra_env`: settings for every process (the routers take its BEEP_OTEL_*, BEEP_FANOUT_* and
    BEEP_ROUTER_RUNTIME);
    `redis`: the event bus's Redis (a Sentinel-managed master and replica for Redis failover drills)."""
    workdir = Path(tempfile.mkdtemp(prefix="beep-full-"))
    stack = Stack("full", workdir, {})
    try:
        postgres = (database or PostgresServer()).start()
        stack.services.append(postgres)
        bus = (redis or RedisServer()).start()
        stack.services.append(bus)
        stack.s3 = S3Server().start()
        stack.services.append(stack.s3)
        run = secrets.token_hex(4)
        directory = postgres.create_database(f"beep_directory_{run}")
        shards_a = postgres.create_database(f"beep_shards_a_{run}")
        shards_b = postgres.create_database(f"beep_shards_b_{run}")
        stack.database_urls = [directory, shards_a, shards_b]
        ports = {name: free_port() for name in SUBGRAPH_NAMES}
        issuer = f"http://127.0.0.1:{ports['users']}"
        router_port = free_port()  # router A's: the public URL
        stack.env = (
            _base_env(workdir)
            | {
                "BEEP_MODE": "full",
                "BEEP_DIRECTORY_URL": directory,
                "BEEP_SHARD_DATABASES": f"0-31={shards_a};32-63={shards_b}",
                "BEEP_REDIS_URL": bus.url,
                "BEEP_ISSUER_URL": issuer,
                "BEEP_PUBLIC_URL": f"http://127.0.0.1:{router_port}",
                "BEEP_ISSUER_KEY_FILE": str(workdir / "issuer-key.pem"),
                # Small pools on purpose: a request that holds a connection per shard would exhaust them
                # in tests rather than in production (benchmarks raise it).
                "BEEP_DB_POOL_SIZE": os.environ.get("BEEP_TEST_DB_POOL_SIZE", "2"),
                # One warmed connection per pool: the warm-up runs in every stack, while the many stacks
                # of a suite stay within the test PostgreSQL's max_connections (benchmarks warm as deployed).
                "BEEP_DB_POOL_WARM": os.environ.get("BEEP_TEST_DB_POOL_WARM", "1"),
            }
            | stack.s3.env()
            | (extra_env or {})
        )
        subprocess.run([*BEEP, "db", "upgrade"], env=stack.env, check=True, capture_output=True)
        second_messages = free_port()
        launches = [*ports.items(), ("messages-2", second_messages)]
        stack.subgraph_ports = dict(launches)
        started = [
            (name, port, stack.spawn(name, [*BEEP, "serve", name.split("-")[0], "--port", str(port)]))
            for name, port in launches
        ]
        stack.worker_port = free_port()
        started.append(("worker", stack.worker_port, stack.spawn("worker", stack.worker_command())))
        for _name, port, process in started:
            wait_ready(f"http://127.0.0.1:{port}/healthz", process=process)
        stack.subgraph_urls = {name: f"http://127.0.0.1:{port}/graphql" for name, port in ports.items()}
        jwks = f"{issuer}/.well-known/jwks.json"
        stack.router_url = stack.start_router("router-a", stack.subgraph_urls, jwks, issuer, port=router_port)
        replica_2 = stack.subgraph_urls | {"messages": f"http://127.0.0.1:{second_messages}/graphql"}
        stack.second_router_url = stack.start_router("router-b", replica_2, jwks, issuer)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        stack.stop()
        raise
    _RUNNING.append(stack)
    return stack
