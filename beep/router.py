"""Starting the Hive Gateway router (Node) next to the Python subgraphs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROUTER_DIR = ROOT / "router"
SUPERGRAPH = ROOT / "supergraph" / "supergraph.graphql"


def ensure_router_installed() -> None:
    if (ROUTER_DIR / "node_modules" / ".bin" / "hive-gateway").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed for the router: install Node.js 20 (see README)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROUTER_DIR, check=True)


def router_node() -> str:
    """The Node that runs the router: the runtime pinned in router/package.json (an optional dependency,
    installed by `npm ci` on Linux x64 and arm64), else the system's `node`. The router's dependencies
    want Node >= 22.15, and the same router spent 22-32% less CPU per request on Node 24 than on 20 at
    100 msg/s (bench/README.md, session 17): it should not depend on which Node a machine happens to have."""
    pinned = ROUTER_DIR / "node_modules" / ".bin" / "node"
    if pinned.exists():
        return str(pinned)
    system = shutil.which("node")
    if system is None:
        raise SystemExit("node is needed for the router: install Node.js 20 or newer (see README)")
    return system


def router_env(
    *,
    port: int,
    subgraph_urls: Mapping[str, str],
    jwks_url: str,
    issuer: str,
    audience: str,
    internal_secret: str,
) -> dict[str, str]:
    """`internal_secret`: the subgraphs' BEEP_INTERNAL_SECRET, which the fan-out tier signs with."""
    env = dict(os.environ)
    env.update(
        BEEP_INTERNAL_SECRET=internal_secret,
        BEEP_ROUTER_PORT=str(port),
        BEEP_SUPERGRAPH=str(SUPERGRAPH),
        BEEP_JWKS_URL=jwks_url,
        BEEP_JWT_ISSUER=issuer,
        BEEP_JWT_AUDIENCE=audience,
    )
    for name, url in subgraph_urls.items():
        env[f"BEEP_SUBGRAPH_URL_{name.upper()}"] = url
    return env


def start_router(env: Mapping[str, str], *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    ensure_router_installed()
    binary = ROUTER_DIR / "node_modules" / ".bin" / "hive-gateway"
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        [router_node(), str(binary), "supergraph", str(SUPERGRAPH)],
        cwd=ROUTER_DIR,
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
    )


def wait_ready(url: str, *, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready within {timeout:.0f}s")
