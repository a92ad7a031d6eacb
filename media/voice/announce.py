"""Which addresses the media server's answers announce (what mediasoup's `announcedIp` and LiveKit's
`node_ip` do). aiortc offers a host candidate on every interface's address (aioice leaves out only
127.0.0.1); behind a 1:1 NAT (a cloud VM's public IP, a Kubernetes node's external IP with host network)
none of them is where clients can reach it, and some (docker bridges) are never useful.

`rewrite_answer` edits an answer's SDP text, nothing else (aiortc's own state is untouched: its sockets
stay bound to the private addresses, and the NAT maps `public:port` to `private:port`):
- with `host_addresses`, only host candidates on those local addresses are kept (plus any already at the
  announced address, so a second pass changes nothing);
- with `address`, the kept host candidates of its family (IPv4 or IPv6) take it instead of theirs, same
  port, foundation and priority; those of the other family are kept as they are;
- every media section's `c=` line and m-line port follow its first remaining candidate (the default
  candidate, as aiortc writes it; a rejected m-line's port 0 stays);
- server-reflexive, relayed and peer-reflexive candidates are never touched.
Lines it does not understand are left as they are. A media section that had candidates and would keep
none raises `NoCandidates` (an answer nobody can connect to is worse than a refusal)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CANDIDATE = "a=candidate:"


class NoCandidates(ValueError):
    """Filtering would leave a media section without any candidate."""


def parse_address(text: str, setting: str) -> IPAddress:
    """An IPv4 or IPv6 literal a host can be reached at (not 0.0.0.0/::, multicast or with a scope)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{setting}: {text.strip()!r} is not an IPv4 or IPv6 address") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"{setting}: {address} cannot be a host's address")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValueError(f"{setting}: {text.strip()!r} has a scope; give the address alone")
    return address


def parse_addresses(text: str, setting: str) -> tuple[IPAddress, ...]:
    """Comma-separated addresses (empty: none), each checked as `parse_address` does, duplicates dropped."""
    found: list[IPAddress] = []
    for part in text.split(","):
        if part.strip():
            address = parse_address(part, setting)
            if address not in found:
                found.append(address)
    return tuple(found)


@dataclass(frozen=True)
class Announcement:
    """What the answers announce: `address` (None: each host candidate's own) and the local addresses
    whose host candidates are announced (empty: all)."""

    address: IPAddress | None = None
    host_addresses: frozenset[IPAddress] = frozenset()

    @classmethod
    def of(cls, address: str = "", host_addresses: Iterable[str] = ()) -> Announcement:
        return cls(
            parse_address(address, "announced address") if address.strip() else None,
            frozenset(parse_address(a, "host addresses") for a in host_addresses if a.strip()),
        )

    @property
    def changes_anything(self) -> bool:
        return self.address is not None or bool(self.host_addresses)

    def missing(self, present: Sequence[str]) -> list[IPAddress]:
        """The configured host addresses this machine does not have (`present`: aioice's
        `get_host_addresses(True, True)`, which aiortc gathers on). Raises ValueError when none of them
        is there: no answer could carry a host candidate."""
        if not self.host_addresses:
            return []
        have = {_ip(a) for a in present}
        missing = sorted((a for a in self.host_addresses if a not in have), key=str)
        if len(missing) == len(self.host_addresses):
            raise ValueError(
                "BEEP_VOICE_HOST_ADDRESSES: none of "
                + ", ".join(map(str, missing))
                + " is an address of this machine (it has "
                + (", ".join(sorted(present)) or "none but 127.0.0.1, which is never gathered")
                + ")"
            )
        return missing

    def ambiguous(self, present: Sequence[str]) -> list[str]:
        """Local addresses of the announced address's family whose candidates would all take it, when
        there are several and no host addresses choose among them (only one of them is the NAT's)."""
        if self.address is None or self.host_addresses:
            return []
        same = [a for a in present if (ip := _ip(a)) is not None and ip.version == self.address.version]
        return same if len(same) > 1 else []


@dataclass
class _Candidate:
    tokens: list[str]  # the line after "a=candidate:", split on single spaces (joined back unchanged)
    ip: IPAddress | None

    @classmethod
    def parse(cls, line: str) -> _Candidate | None:
        tokens = line[len(CANDIDATE) :].split(" ")
        if len(tokens) < 8 or tokens[6] != "typ" or not tokens[5].isdigit():
            return None
        return cls(tokens, _ip(tokens[4]))

    @property
    def kind(self) -> str:
        return self.tokens[7]

    @property
    def port(self) -> str:
        return self.tokens[5]

    def key(self) -> tuple[str, str, str, str]:
        return self.tokens[1], self.tokens[2].lower(), str(self.ip or self.tokens[4]), self.port

    def line(self) -> str:
        return CANDIDATE + " ".join(self.tokens)


def rewrite_answer(sdp: str, announcement: Announcement) -> str:
    if not announcement.changes_anything:
        return sdp
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if not starts:
        return sdp
    header = lines[: starts[0]]
    sections = [lines[a:b] for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    renamed: set[IPAddress] = set()
    out = list(header)
    for section in sections:
        out.extend(_rewrite_section(section, announcement, renamed))
    if announcement.address is not None:  # a session-level c= naming an address the candidates left
        out[: len(header)] = [_connection(line, announcement.address, renamed) for line in header]
    return newline.join(out)


def _rewrite_section(section: list[str], announcement: Announcement, renamed: set[IPAddress]) -> list[str]:
    address, allowed = announcement.address, announcement.host_addresses
    kept: list[_Candidate] = []
    seen: set[tuple[str, str, str, str]] = set()
    had_candidates = False
    out: list[str] = []
    for line in section:
        candidate = _Candidate.parse(line) if line.startswith(CANDIDATE) else None
        if candidate is None:
            out.append(line)
            continue
        had_candidates = True
        if candidate.kind == "host" and candidate.ip is not None:
            if allowed and candidate.ip not in allowed and candidate.ip != address:
                continue
            if address is not None and candidate.ip.version == address.version:
                if candidate.ip != address:
                    renamed.add(candidate.ip)
                candidate.ip = address
                candidate.tokens[4] = str(address)
                if candidate.key() in seen:  # two local addresses' sockets on one port: one is enough
                    continue
                seen.add(candidate.key())
        kept.append(candidate)
        out.append(candidate.line())
    if not had_candidates:
        return out
    if not kept:
        raise NoCandidates("no candidate of this media section is on an announced host address")
    default = kept[0]
    if default.ip is None:
        return out
    for i, line in enumerate(out):
        if line.startswith("c="):
            out[i] = f"c=IN IP{default.ip.version} {default.ip}"
        elif line.startswith("m="):
            bits = line.split(" ")
            if len(bits) > 1 and bits[1].isdigit() and bits[1] != "0":
                bits[1] = default.port
                out[i] = " ".join(bits)
    return out


def _connection(line: str, address: IPAddress, renamed: set[IPAddress]) -> str:
    if not line.startswith("c="):
        return line
    bits = line.split(" ")
    if len(bits) == 3 and _ip(bits[2]) in renamed:
        return f"c=IN IP{address.version} {address}"
    return line


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
