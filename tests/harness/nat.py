"""A 1:1 NAT in user space, for the media server's announced address: datagrams to `public:port` go to
`private:port` (same port, as a cloud VM's elastic IP does), and the private side's replies go back to
the sender from `public:port`. Each sender gets its own outgoing socket, so the private side sees a
stable source per client (a peer-reflexive candidate) and its replies find their way back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, cast

import pytest
from aioice.ice import get_host_addresses

Address = tuple[Any, ...]


class _Mapping(asyncio.DatagramProtocol):
    """`public:port` → `private:port` for every client that sends to it."""

    def __init__(self, private: tuple[str, int]) -> None:
        self.private = private
        self.transport: asyncio.DatagramTransport | None = None
        self.inside: dict[Address, socket.socket] = {}  # client -> its outgoing socket to the private side
        self.forwarded = 0  # datagrams passed in either direction

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        sock = self.inside.get(addr)
        if sock is None:
            family = socket.AF_INET6 if ":" in self.private[0] else socket.AF_INET
            sock = self.inside[addr] = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.private)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._reply, sock, addr)
        with contextlib.suppress(OSError):  # a full buffer or an ICMP error: UDP may drop
            sock.send(data)
            self.forwarded += 1

    def _reply(self, sock: socket.socket, client: Address) -> None:
        try:
            data = sock.recv(65_536)
        except OSError:
            return
        if self.transport is not None:
            self.transport.sendto(data, client)
            self.forwarded += 1

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self.inside.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self.inside.clear()
        if self.transport is not None:
            self.transport.close()


def private_address() -> str:
    """This machine's first non-loopback IPv4 address: what aiortc gathers on (never 127.0.0.1), and so
    the private side of a NAT whose public side is 127.0.0.1."""
    found = get_host_addresses(True, False)
    if not found:
        pytest.fail("this test needs a non-loopback IPv4 address", pytrace=False)
    return found[0]


class OneToOneNat:
    """Maps `public` to `private` port by port, for the ports it is told to open."""

    def __init__(self, public: str, private: str) -> None:
        self.public = public
        self.private = private
        self.mappings: dict[int, _Mapping] = {}

    async def open(self, port: int) -> None:
        if port in self.mappings:
            return
        mapping = _Mapping((self.private, port))
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: mapping, local_addr=(self.public, port)
        )
        self.mappings[port] = mapping

    @property
    def forwarded(self) -> int:
        return sum(m.forwarded for m in self.mappings.values())

    def close(self) -> None:
        for mapping in self.mappings.values():
            mapping.close()
        self.mappings.clear()


def without_candidates(offer_sdp: str) -> str:
    """A client's offer without its candidates, and without end-of-candidates (so the server waits to
    learn it from its connectivity checks, as peer-reflexive): a client behind its own NAT, nothing the
    server could reach directly. The only way in is then the server's announced address."""
    return "".join(
        line
        for line in offer_sdp.splitlines(keepends=True)
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )


def host_candidates(sdp: str) -> set[tuple[str, int]]:
    """(address, port) of an SDP's host candidates."""
    found = set()
    for line in sdp.splitlines():
        bits = line.split(" ")
        if line.startswith("a=candidate:") and len(bits) > 7 and bits[7] == "host":
            found.add((bits[4], int(bits[5])))
    return found
