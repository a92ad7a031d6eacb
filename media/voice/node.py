"""Calls spread over several processes. Each call is owned by one process (rendezvous hashing of its
channel over `BEEP_VOICE_NODES`, `hub.owner_of`); every replica reaches the owner through `Owner`: the
process's own hub (`LocalOwner`) or a small internal HTTP API (`RemoteOwner` → `internal_endpoint`, JSON,
authenticated by a shared secret header). With no nodes configured every call is local."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from media.voice.errors import Refusal, VoiceRefused
from media.voice.hub import VoiceHub, owner_of
from media.voice.room import Answer, ParticipantState, StreamSlot

SECRET_HEADER = "x-beep-voice-secret"
INTERNAL_PATH = "/voice/internal"


class Owner(Protocol):
    async def join(self, channel_id: int, user_id: int, offer: str, **kw: Any) -> Answer: ...
    async def update(self, user_id: int, offer: str | None, **kw: Any) -> tuple[int, Answer | None]: ...
    async def leave(self, user_id: int) -> int: ...
    async def moderate(self, channel_id: int, user_id: int, *, server_mute: bool) -> None: ...
    async def disconnect(self, channel_id: int, user_id: int) -> None: ...
    async def restrict(self, channel_id: int, user_id: int, *, can_speak: bool, can_stream: bool) -> bool: ...
    async def states(self, channel_id: int) -> list[ParticipantState]: ...
    async def channel_of(self, user_id: int) -> int | None: ...


class LocalOwner:
    def __init__(self, hub: VoiceHub) -> None:
        self.hub = hub

    async def join(self, channel_id: int, user_id: int, offer: str, **kw: Any) -> Answer:
        return await self.hub.join(channel_id, user_id, offer, **kw)

    async def update(self, user_id: int, offer: str | None, **kw: Any) -> tuple[int, Answer | None]:
        return await self.hub.update(user_id, offer, **kw)

    async def leave(self, user_id: int) -> int:
        return await self.hub.leave(user_id)

    async def moderate(self, channel_id: int, user_id: int, *, server_mute: bool) -> None:
        await self.hub.moderate(channel_id, user_id, server_mute=server_mute)

    async def disconnect(self, channel_id: int, user_id: int) -> None:
        await self.hub.disconnect(channel_id, user_id)

    async def restrict(self, channel_id: int, user_id: int, *, can_speak: bool, can_stream: bool) -> bool:
        return await self.hub.restrict(channel_id, user_id, can_speak=can_speak, can_stream=can_stream)

    async def states(self, channel_id: int) -> list[ParticipantState]:
        return self.hub.states(channel_id)

    async def channel_of(self, user_id: int) -> int | None:
        return self.hub.channel_of(user_id)


# --- the wire format ------------------------------------------------------------------------------------


def _encode(method: str, result: Any) -> Any:
    if method == "join":
        return asdict(result)
    if method == "update":
        channel_id, answer = result
        return [channel_id, asdict(answer) if answer is not None else None]
    if method == "states":
        return [asdict(s) for s in result]
    return result


def _answer(data: dict[str, Any]) -> Answer:
    return Answer(
        sdp=data["sdp"],
        streams=tuple(StreamSlot(**s) for s in data["streams"]),
        audio_slots_needed=data["audio_slots_needed"],
        video_slots_needed=data["video_slots_needed"],
    )


def _decode(method: str, data: Any) -> Any:
    if method == "join":
        return _answer(data)
    if method == "update":
        return data[0], _answer(data[1]) if data[1] is not None else None
    if method == "states":
        return [ParticipantState(**s) for s in data]
    return data


METHODS = ("join", "update", "leave", "moderate", "disconnect", "restrict", "states", "channel_of")


class RemoteOwner:
    """Another process's hub, over its internal endpoint."""

    def __init__(self, base_url: str, secret: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self._client = client

    async def _call(self, method: str, **arguments: Any) -> Any:
        try:
            response = await self._client.post(
                f"{self.base_url}{INTERNAL_PATH}/{method}",
                content=json.dumps(arguments),
                headers={SECRET_HEADER: self._secret, "content-type": "application/json"},
            )
        except httpx.HTTPError:
            raise VoiceRefused(
                Refusal.CONNECTION_FAILED, "The call's media server cannot be reached."
            ) from None
        if response.status_code != 200:
            raise VoiceRefused(Refusal.CONNECTION_FAILED, "The call's media server refused the request.")
        body = response.json()
        if "refused" in body:
            refused = body["refused"]
            raise VoiceRefused(Refusal(refused["reason"]), refused["message"], refused["field"])
        return _decode(method, body["ok"])

    async def join(self, channel_id: int, user_id: int, offer: str, **kw: Any) -> Answer:
        result: Answer = await self._call("join", channel_id=channel_id, user_id=user_id, offer=offer, **kw)
        return result

    async def update(self, user_id: int, offer: str | None, **kw: Any) -> tuple[int, Answer | None]:
        result: tuple[int, Answer | None] = await self._call("update", user_id=user_id, offer=offer, **kw)
        return result

    async def leave(self, user_id: int) -> int:
        return int(await self._call("leave", user_id=user_id))

    async def moderate(self, channel_id: int, user_id: int, *, server_mute: bool) -> None:
        await self._call("moderate", channel_id=channel_id, user_id=user_id, server_mute=server_mute)

    async def disconnect(self, channel_id: int, user_id: int) -> None:
        await self._call("disconnect", channel_id=channel_id, user_id=user_id)

    async def restrict(self, channel_id: int, user_id: int, *, can_speak: bool, can_stream: bool) -> bool:
        return bool(
            await self._call(
                "restrict", channel_id=channel_id, user_id=user_id, can_speak=can_speak, can_stream=can_stream
            )
        )

    async def states(self, channel_id: int) -> list[ParticipantState]:
        result: list[ParticipantState] = await self._call("states", channel_id=channel_id)
        return result

    async def channel_of(self, user_id: int) -> int | None:
        found = await self._call("channel_of", user_id=user_id)
        return int(found) if found is not None else None


def internal_endpoint(hub: Callable[[], VoiceHub], secret: str) -> Callable[[Request], Any]:
    """`POST <node>/voice/internal/<method>`: a method of `LocalOwner` with JSON keyword arguments. 404
    without a configured secret (single-process deployments expose nothing), 403 with a wrong one."""

    async def endpoint(request: Request) -> Response:
        if not secret:
            return Response(status_code=404)
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return Response(status_code=403)
        method = request.path_params["method"]
        if method not in METHODS:
            return Response(status_code=404)
        try:
            arguments = json.loads(await request.body())
            if not isinstance(arguments, dict):
                raise TypeError
            result = await getattr(LocalOwner(hub()), method)(**arguments)
        except VoiceRefused as refused:
            return JSONResponse(
                {
                    "refused": {
                        "reason": refused.reason.value,
                        "message": refused.message,
                        "field": refused.field,
                    }
                }
            )
        except (TypeError, ValueError):
            return Response(status_code=400)
        return JSONResponse({"ok": _encode(method, result)})

    return endpoint


class VoiceDirectory:
    """Who owns which call, from any replica."""

    def __init__(
        self, hub: VoiceHub, nodes: tuple[str, ...] = (), self_url: str = "", secret: str = ""
    ) -> None:
        self.local = LocalOwner(hub)
        self.nodes = tuple(n.rstrip("/") for n in nodes)
        # Empty with nodes listed: this replica serves the API and hosts no call (dedicated media nodes).
        self.self_url = self_url.rstrip("/")
        if self.nodes and self.self_url and self.self_url not in self.nodes:
            raise ValueError("BEEP_VOICE_NODE_URL must be one of BEEP_VOICE_NODES (or empty: host no call)")
        client = httpx.AsyncClient(timeout=20.0)
        self.remotes = {url: RemoteOwner(url, secret, client) for url in self.nodes if url != self.self_url}

    @property
    def hosts_calls(self) -> bool:
        return not self.nodes or bool(self.self_url)

    def owner(self, channel_id: int) -> Owner:
        if not self.nodes:
            return self.local
        url = owner_of(channel_id, self.nodes)
        return self.local if url == self.self_url else self.remotes[url]

    async def call_of(self, user_id: int) -> tuple[int, Owner] | None:
        """The call a user is in, whichever node owns it (each node is asked: a handful of them)."""
        owners: list[Owner] = [*([self.local] if self.hosts_calls else []), *self.remotes.values()]
        for owner in owners:
            channel_id = await owner.channel_of(user_id)
            if channel_id is not None:
                return channel_id, owner
        return None
