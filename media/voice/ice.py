"""The ICE servers of the media server and of its clients.

The server's own list is explicit (`BEEP_VOICE_ICE_SERVERS`, empty by default): aiortc's default STUN
server, when unreachable, stalls every answer by 5 s. Clients get the TURN server(s) of
`BEEP_VOICE_TURN_URLS` with time-limited credentials in coturn's `use-auth-secret` scheme (the username
is `<expiry>:<user id>`, the password the base64 HMAC-SHA1 of it under the shared secret
`BEEP_VOICE_TURN_SECRET`), so no long-lived TURN password ever reaches a browser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from aiortc import RTCIceServer


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def for_aiortc(self) -> RTCIceServer:
        return RTCIceServer(urls=list(self.urls), username=self.username, credential=self.credential)


def parse_urls(spec: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in spec.split(",") if u.strip())


def turn_credentials(
    secret: str, user_id: int, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    expiry = int((now if now is not None else time.time()) + ttl_seconds)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def client_ice_servers(
    stun_urls: tuple[str, ...], turn_urls: tuple[str, ...], turn_secret: str, user_id: int, ttl_seconds: int
) -> list[IceServer]:
    servers = [IceServer(stun_urls)] if stun_urls else []
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, user_id, ttl_seconds)
        servers.append(IceServer(turn_urls, username, credential))
    return servers
