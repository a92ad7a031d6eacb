"""Experiment: subgraph CPU per request with and without Strawberry's ParserCache + ValidationCache.

`python -m bench.cache_experiment` starts two `beep serve all` processes side by side (SQLite, no router):
one as-is, one with `ParserCache()` and `ValidationCache()` appended to `schema_extensions()` by a
launcher (nothing in the repository is changed). Then it sends the same requests, one at a time and
straight to the subgraphs, to both, alternating, 3 rounds x 200 requests per case, and prints the CPU
milliseconds per request of each process (median of the rounds). The router sends the same operation
text again and again, so every request after the first would be a cache hit.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from beep.router import ROOT, wait_ready
from bench.load import Gql, closed_loop, pooled_client
from bench.procs import CpuMeter
from subgraphs.kernel.web import internal
from tests.harness.ports import free_port
from tests.integration.flows import SIGN_UP

CREATE_SERVER = (
    "mutation C($input: CreateServerInput!) { createServer(input: $input) { ... on Server { id } } }"
)
CREATE_CHANNEL = (
    "mutation C($input: CreateChannelInput!) { createChannel(input: $input) { ... on Channel { id } } }"
)
ENTITIES = "query E($r: [_Any!]!) { _entities(representations: $r) { ... on User { id username } } }"
HISTORY = """query H($channelId: ID!, $first: Int) {
  messages(channelId: $channelId, first: $first) {
    edges { cursor node { id content createdAt author { id } } }
  }
}"""
SEND = """mutation S($input: SendMessageInput!) {
  sendMessage(input: $input) { __typename ... on Message { id } }
}"""

SECRET = secrets.token_urlsafe(32)  # both processes' internal secret; requests carry its credential
INTERNAL = {internal.CALLER_HEADER: internal.caller_credential(SECRET)}
PLAIN = "import sys; from beep.cli import main; main(sys.argv[1:])"
CACHED = (
    "import sys; import subgraphs.kernel.web.extensions as x; from strawberry.extensions import ParserCache, "
    "ValidationCache; base = x.schema_extensions; "
    "x.schema_extensions = lambda: [*base(), ParserCache(maxsize=256), ValidationCache(maxsize=256)]; "
    "from beep.cli import main; main(sys.argv[1:])"
)


def start(launcher: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEP_")}
    env |= {"BEEP_DATA_DIR": str(workdir / "data"), "BEEP_PORT": str(port), "PYTHONUNBUFFERED": "1",
            "BEEP_ISSUER_URL": f"http://127.0.0.1:{port}/users", "BEEP_INTERNAL_SECRET": SECRET}  # fmt: skip
    subprocess.run([sys.executable, "-m", "beep.cli", "db", "upgrade"], env=env, check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    log = (workdir / "serve.log").open("ab")
    process = subprocess.Popen([sys.executable, "-c", launcher, "serve", "all", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    log.close()
    wait_ready(f"http://127.0.0.1:{port}/healthz", process=process)
    return process, f"http://127.0.0.1:{port}"


async def cases(gql: Callable[[str], Gql]) -> dict[str, Callable[[int, int], Awaitable[object]]]:
    name = f"cexp{secrets.token_hex(4)}"
    payload = {"firstName": "C", "lastName": "E", "username": name, "email": f"{name}@example.test",
               "password": f"pw-{secrets.token_hex(8)}"}  # fmt: skip
    signed = (await gql("users").data(SIGN_UP, {"input": payload}))["signUp"]
    token, user_id = signed["accessToken"], signed["user"]["id"]
    server = await gql("servers").data(
        CREATE_SERVER, {"input": {"name": "CX", "visibility": "PUBLIC"}}, token
    )
    server_id = server["createServer"]["id"]
    channel = await gql("channels").data(
        CREATE_CHANNEL, {"input": {"serverId": server_id, "name": "c"}}, token
    )
    channel_id = channel["createChannel"]["id"]
    send = {"input": {"channelId": channel_id, "content": "x"}}
    for _ in range(60):
        await gql("messages").data(SEND, send, token)
    return {
        "users _entities (1 User)": lambda w, i: gql("users").data(
            ENTITIES, {"r": [{"__typename": "User", "id": user_id}]}, token
        ),
        "messages history (50)": lambda w, i: gql("messages").data(
            HISTORY, {"channelId": channel_id, "first": 50}, token
        ),
        "messages sendMessage": lambda w, i: gql("messages").data(SEND, send, token),
    }


async def experiment(plain: tuple[int, str], cached: tuple[int, str]) -> None:
    meter = CpuMeter()
    meter.add("plain", plain[0])
    meter.add("cached", cached[0])
    samples: dict[tuple[str, str], list[float]] = {}
    async with pooled_client(4) as http:
        variants = {}
        for label, base in (("plain", plain[1]), ("cached", cached[1])):
            variants[label] = await cases(lambda sub, base=base: Gql(http, f"{base}/{sub}/graphql", INTERNAL))  # type: ignore[misc]
        for _round in range(3):
            for case in variants["plain"]:
                for label in ("plain", "cached"):
                    call = variants[label][case]

                    async def run(
                        w: int, i: int, call: Callable[[int, int], Awaitable[object]] = call
                    ) -> None:
                        await call(w, i)

                    await closed_loop(1, 10, 30, run)
                    before = meter.snapshot()
                    outcome = await closed_loop(1, 200, 60, run)
                    after = meter.snapshot()
                    done = max(len(outcome.latencies_ms), 1)
                    samples.setdefault((case, label), []).append(
                        (after.groups[label] - before.groups[label]) / done * 1000
                    )
    print("| request (direct to the subgraph) | CPU ms/request as-is | with ParserCache + ValidationCache |")
    print("|---|---|---|")
    for case in variants["plain"]:
        plain_ms = statistics.median(samples[(case, "plain")])
        cached_ms = statistics.median(samples[(case, "cached")])
        print(f"| {case} | {plain_ms:.1f} | {cached_ms:.1f} ({(1 - cached_ms / plain_ms) * 100:.0f}% less) |")


def main() -> int:
    workdirs = [Path(tempfile.mkdtemp(prefix="beep-cache-exp-")) for _ in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        plain = start(PLAIN, workdirs[0])
        processes.append(plain[0])
        cached = start(CACHED, workdirs[1])
        processes.append(cached[0])
        asyncio.run(experiment((plain[0].pid, plain[1]), (cached[0].pid, cached[1])))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
