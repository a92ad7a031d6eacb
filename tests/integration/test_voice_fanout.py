"""`voiceStateEvents` through the router's fan-out tier (router/fanout.ts), as clients use it: the sockets
watching a call share one rendered stream, a socket joining it late starts with the call's current state
(each event is the whole state), and access is still decided per socket: a stranger is refused, and a
member who loses the view is told FORBIDDEN and gets nothing after."""

from __future__ import annotations

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import Operation
from tests.harness.stack import Stack
from tests.harness.voice_api import LEAVE, STATE_EVENTS, UPDATE, join_call
from tests.harness.voice_peers import VoicePeer
from tests.integration.flows import (
    Users,
    accept,
    create_channel,
    create_server,
    invite,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.message_flows import streams_opened

OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""


def voice_streams_opened(stack: Stack) -> int:
    return sum(
        '"field":"voiceStateEvents"' in line
        for log in stack.workdir.glob("router*.log")
        for line in log.read_text(errors="replace").splitlines()
        if "[beep-fanout] stream opened" in line
    )


async def participants(operation: Operation) -> list[tuple[str, bool]]:
    message = await operation.next(timeout=20)
    assert message["type"] == "next" and not message["payload"].get("errors"), message
    state = message["payload"]["data"]["voiceStateEvents"]
    return [(p["userId"], p["selfMute"]) for p in state["participants"]]


async def becomes(operation: Operation, expected: list[tuple[str, bool]]) -> None:
    """The states a socket receives until `expected` (a call may announce a state more than once)."""
    seen = [await participants(operation)]
    while seen[-1] != expected:
        assert len(seen) < 5, seen
        seen.append(await participants(operation))


async def test_sockets_share_one_voice_stream_and_access_is_per_socket(stack: Stack) -> None:
    users = Users(stack)
    ada, ada_api = await users.new("vfada")
    members = {name: await users.new(f"vf{name}") for name in ("bob", "cy", "dee")}
    _eve, stranger = await users.new("vfeve")
    server = await create_server(ada_api, "Voice fan-out")
    voice = (await create_channel(ada_api, server["id"], "stage", kind="VOICE"))["id"]
    code = (await invite(ada_api, server["id"]))["inviteCode"]
    for _account, client in members.values():
        assert (await accept(client, code))["__typename"] == "Server"
    (_bob, bob_api), (_cy, cy_api), (dee, dee_api) = members.values()
    before_all, before = streams_opened(stack), voice_streams_opened(stack)
    peer: VoicePeer | None = None
    try:
        async with (
            bob_api.subscriptions() as bob_socket,
            dee_api.subscriptions() as dee_socket,
            cy_api.subscriptions() as cy_socket,
            stranger.subscriptions() as stranger_socket,
        ):
            bob_watch = await subscribe_settled(bob_socket, STATE_EVENTS, {"c": voice})
            dee_watch = await subscribe_settled(dee_socket, STATE_EVENTS, {"c": voice})
            assert await participants(bob_watch) == []  # the call's state now: nobody
            assert await participants(dee_watch) == []  # the stream's last state, at once

            # a user who cannot view the channel gets no stream at all
            refused = await stranger_socket.subscribe(STATE_EVENTS, {"c": voice})
            assert stream_error_code(await refused.next()) == "NOT_FOUND"

            # a change reaches every socket of the stream
            peer, joined = await join_call(ada_api, voice, 440.0)
            assert joined["__typename"] == "VoiceSession", joined
            await becomes(bob_watch, [(ada.user_id, False)])
            await becomes(dee_watch, [(ada.user_id, False)])

            # a socket joining the running stream starts with the call as it is, not with nothing
            cy_watch = await cy_socket.subscribe(STATE_EVENTS, {"c": voice})
            assert await participants(cy_watch) == [(ada.user_id, False)]

            # dee loses the view: FORBIDDEN, the end of their subscription, and nothing after it
            hidden = {"channelId": voice, "targetKind": "MEMBER", "targetId": dee.user_id}
            deny = {"allow": "0", "deny": str(int(Permission.VIEW_CHANNEL))}
            await ada_api.data(OVERWRITE, {"i": hidden | deny})
            assert stream_error_code(await dee_watch.next()) == "FORBIDDEN"
            assert (await dee_watch.next())["type"] == "complete"
            muted = await ada_api.data(UPDATE, {"i": {"selfMute": True}})
            assert muted["updateVoice"]["__typename"] == "VoiceSession", muted
            await becomes(bob_watch, [(ada.user_id, True)])
            await becomes(cy_watch, [(ada.user_id, True)])
            await dee_watch.expect_nothing(within=1.0)
    finally:
        if peer is not None:
            await peer.close()
        await ada_api.execute(LEAVE)
    # Three sockets of three users on one router: one rendered stream for the call.
    assert voice_streams_opened(stack) - before == 1
    assert streams_opened(stack) - before_all == 1
