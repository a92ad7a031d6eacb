"""Call-host settings hang together, checked when a process starts rather than at the first join."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from media.voice.hub import VoiceHub
from media.voice.node import VoiceDirectory
from media.voice.room import VoiceConfig
from subgraphs.kernel.settings import Settings

NODES = "http://media-0:4103,http://media-1:4103/"


async def _quiet(*_args: object) -> None:
    return None


def test_nodes_need_the_internal_secret() -> None:
    with pytest.raises(ValidationError, match="BEEP_VOICE_INTERNAL_SECRET"):
        Settings(voice_nodes=NODES)


@pytest.mark.parametrize("own", ["http://elsewhere:4103", "http://media-0:4104"])
def test_a_host_names_itself_among_the_nodes(own: str) -> None:
    with pytest.raises(ValidationError, match="must be one of BEEP_VOICE_NODES"):
        Settings(voice_nodes=NODES, voice_internal_secret="s", voice_node_url=own)
    with pytest.raises(ValidationError, match="must be one of BEEP_VOICE_NODES"):
        Settings(voice_node_url=own)  # a node URL without nodes


def test_trailing_slashes_do_not_matter() -> None:
    Settings(voice_nodes=NODES, voice_internal_secret="s", voice_node_url="http://media-1:4103")
    Settings(voice_nodes=NODES, voice_internal_secret="s", voice_node_url="http://media-0:4103/")


async def test_an_api_replica_hosts_no_call() -> None:
    """Nodes listed, no own URL: every call is another process's; this one never hosts one."""
    hub = VoiceHub(VoiceConfig(), _quiet)
    directory = VoiceDirectory(hub, tuple(NODES.split(",")), "", "s")
    assert not directory.hosts_calls
    assert {directory.owner(channel) for channel in range(50)} == set(directory.remotes.values())
    assert len(directory.remotes) == 2
    host = VoiceDirectory(hub, tuple(NODES.split(",")), "http://media-1:4103", "s")
    assert host.hosts_calls and host.local in {host.owner(channel) for channel in range(50)}
    alone = VoiceDirectory(hub)
    assert alone.hosts_calls and alone.owner(7) is alone.local
