"""A real Keycloak for the test run: dev mode on loopback, in-memory database, realm `beep` imported from
keycloak/beep-realm.json, stopped at the end. scripts/install-keycloak downloads it (cached)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness.ports import free_port
from tests.harness.services import ServiceUnavailable

ROOT = Path(__file__).resolve().parents[2]
REALM = "beep"
API_CLIENT = "beep-api"


def java_home() -> str:
    """Keycloak 26 needs Java 21 or newer; the Temurin 25 JDK is where this machine kind keeps one."""
    for candidate in [
        os.environ.get("BEEP_KEYCLOAK_JAVA_HOME", ""),
        "/usr/lib/jvm/temurin-25-jdk-amd64",
        *sorted(glob.glob("/usr/lib/jvm/*-2[1-9]-*"), reverse=True),
    ]:
        if candidate and Path(candidate, "bin", "java").exists():
            return candidate
    raise ServiceUnavailable("Keycloak needs a JDK 21+ under /usr/lib/jvm (set BEEP_KEYCLOAK_JAVA_HOME)")


@dataclass
class KeycloakServer:
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beep-keycloak-")) / "kc.log")
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def beep_env(self) -> dict[str, str]:
        """What the users subgraph needs to use this Keycloak."""
        return {
            "BEEP_IDENTITY": "keycloak",
            "BEEP_KEYCLOAK_URL": self.url,
            "BEEP_KEYCLOAK_REALM": REALM,
            "BEEP_KEYCLOAK_CLIENT_ID": API_CLIENT,
            "BEEP_KEYCLOAK_CLIENT_SECRET": self.client_secret,
        }

    def start(self, timeout: float = 240.0) -> KeycloakServer:
        installed = subprocess.run(
            [str(ROOT / "scripts" / "install-keycloak")], check=True, capture_output=True, text=True
        )
        home = Path(installed.stdout.strip().splitlines()[-1])
        env = {
            **os.environ,
            "JAVA_HOME": java_home(),
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            # Read by the realm import's ${...} placeholders.
            "BEEP_KC_API_CLIENT_SECRET": self.client_secret,
        }
        command = [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            "--db=dev-mem",
            "--import-realm",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--http-management-port={self.management_port}",
            "--hostname-strict=false",
        ]
        began = time.monotonic()
        log = self.log_path.open("ab")
        # Its own process group: kc.sh starts java as a child, and stop() ends both.
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceUnavailable(f"Keycloak exited:\n{self.tail()}")
            try:
                ready = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                if ready.status_code == 200:
                    self.started_in = time.monotonic() - began
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise ServiceUnavailable(f"Keycloak did not answer within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def admin_token(self) -> str:
        response = httpx.post(
            f"{self.issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": API_CLIENT,
                "client_secret": self.client_secret,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not os.environ.get("BEEP_KEEP_TEST_LOGS"):
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
