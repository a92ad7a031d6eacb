"""A 1:1 NAT in user space, for the media server's announced address: datagrams to `public:port` go to
`private:port` (same port, as a cloud VM's elastic IP does), and the private side's replies go back to
the sender from `public:port`. Each sender gets its own outgoing socket, so the private side sees a
stable source per client (a peer-reflexive candidate) and its replies find their way back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, cast

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
