"""coturn (Debian's `turnserver`) on loopback for the voice tests: TURN with coturn's REST-style
time-limited credentials (`use-auth-secret`), as production runs it."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.services import ServiceUnavailable


@dataclass
class CoturnServer:
    port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="beep-coturn-")))

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> CoturnServer:
        binary = shutil.which("turnserver")
        if binary is None:
            raise ServiceUnavailable(
                "turnserver not found: run scripts/install-services (it installs coturn)"
            )
        relay_from = 49152 + (self.port % 1000) * 16
        self.process = subprocess.Popen(
            [
                binary, "-n", "--listening-ip=127.0.0.1", f"--listening-port={self.port}",
                "--relay-ip=127.0.0.1", f"--min-port={relay_from}", f"--max-port={relay_from + 15}",
                "--use-auth-secret", f"--static-auth-secret={self.secret}", "--realm=beep",
                "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint",
                f"--pidfile={self.workdir / 'turnserver.pid'}", f"--log-file={self.workdir / 'turn.log'}",
                "--simple-log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceUnavailable("turnserver exited at start")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.settimeout(0.2)
                # A STUN binding request: coturn answers it once it listens.
                probe.sendto(
                    b"\x00\x01\x00\x00\x21\x12\xa4\x42" + secrets.token_bytes(12), ("127.0.0.1", self.port)
                )
                try:
                    probe.recvfrom(512)
                    return self
                except OSError:
                    time.sleep(0.1)
        raise ServiceUnavailable("turnserver did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)
