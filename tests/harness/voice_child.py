"""A call participant in its own process, for tests that kill it: joins the call through the router and
keeps sending until killed (no leave, no goodbye). argv: router URL, token, channel id."""

from __future__ import annotations

import asyncio
import sys

from tests.harness.client import GraphQLClient
from tests.harness.voice_api import join_call


async def main(url: str, token: str, channel_id: str) -> None:
    client = GraphQLClient(url, token)
    peer, payload = await join_call(client, channel_id, 770.0)
    assert payload["__typename"] == "VoiceSession", payload
    print("joined", flush=True)
    await asyncio.sleep(3600)
    await peer.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
