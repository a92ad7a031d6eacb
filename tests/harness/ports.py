"""Free loopback ports for the processes a test run starts.

A port the OS hands out for `bind(0)` comes from the ephemeral range, the same range outgoing connections
take their local ports from: between choosing it and the process binding it, a connection to PostgreSQL
or Redis could take it ("address already in use": CI saw a worker fail so). Ports are therefore drawn
below the ephemeral range, checked free, and never handed out twice by this process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_handed_out: set[int] = set()
_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    highest = _ephemeral_start() - 1
    if highest - _LOWEST >= 1_000:
        for _ in range(500):
            port = random.randint(_LOWEST, highest)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below: let the OS choose
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port
