"""The addresses the media server's answers announce (media/voice/announce.py): host candidates filtered
to the configured local addresses and rewritten to the announced one, c= lines and m-line ports after
them, everything else as it was; and the settings that choose them."""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aioice.ice import get_host_addresses
from pydantic import ValidationError

from media.voice.announce import Announcement, NoCandidates, parse_address, rewrite_answer
from subgraphs.channels.voice_service import announcement, check_voice_settings
from subgraphs.kernel.settings import Settings, UnusableSettings

pytestmark = pytest.mark.unit

ETH0 = "a=candidate:f957a2332b1715da 1 udp 2130706431 10.0.0.5 46849 typ host"
DOCKER = "a=candidate:0a1b2c3d4e5f6a7b 1 udp 2130706431 172.17.0.1 51000 typ host"
ETH0_V6 = "a=candidate:d0bcf3d9c29a2bc8 1 udp 2130706431 2001:db8::5 43668 typ host"
SRFLX = "a=candidate:8e1f2d3c4b5a6978 1 udp 1694498815 203.0.113.9 46849 typ srflx raddr 10.0.0.5 rport 46849"
RELAY = (
    "a=candidate:7d6c5b4a39281706 1 udp 16777215 198.51.100.3 60001 typ relay raddr 203.0.113.9 rport 4000"
)


def media(kind: str, mid: str, candidates: list[str], port: int = 46849, host: str = "10.0.0.5") -> list[str]:
    return [
        f"m={kind} {port} UDP/TLS/RTP/SAVPF 96",
        f"c=IN IP4 {host}",
        "a=sendrecv",
        f"a=mid:{mid}",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=rtpmap:96 opus/48000/2" if kind == "audio" else "a=rtpmap:96 VP8/90000",
        *candidates,
        "a=end-of-candidates",
        "a=ice-ufrag:2HGp",
        "a=ice-pwd:DDMBAZLAyXAwzFh9uop1Oi",
        "a=fingerprint:sha-256 52:0D:59:48:74:9F:E7:B7:A5:EA:8B:0B:AE:6C:AC:B5",
        "a=setup:active",
    ]


def answer(candidates: list[str] | None = None, kinds: tuple[str, ...] = ("audio", "video", "audio")) -> str:
    """An answer shaped like aiortc's: BUNDLE, every m-line with the same candidates, CRLF."""
    chosen = candidates if candidates is not None else [ETH0, DOCKER, ETH0_V6, SRFLX, RELAY]
    lines = [
        "v=0",
        "o=- 4004858778 4004858778 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(len(kinds))),
        "a=msid-semantic:WMS *",
    ]
    for i, kind in enumerate(kinds):
        lines += media(kind, str(i), chosen)
    return "\r\n".join([*lines, ""])


def sections(sdp: str) -> list[list[str]]:
    found: list[list[str]] = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def candidates_of(section: list[str]) -> list[str]:
    return [line for line in section if line.startswith("a=candidate:")]


def test_without_settings_the_answer_is_untouched() -> None:
    sdp = answer()
    assert rewrite_answer(sdp, Announcement()) == sdp
    assert rewrite_answer(sdp, Announcement.of("", [])) == sdp


def test_announced_ipv4_address_replaces_ipv4_host_candidates_in_every_media_line() -> None:
    sdp = rewrite_answer(answer(), Announcement.of("198.51.100.20"))
    found = sections(sdp)
    assert len(found) == 3
    for section in found:
        assert candidates_of(section) == [
            # the foundation, priority and port are kept
            "a=candidate:f957a2332b1715da 1 udp 2130706431 198.51.100.20 46849 typ host",
            "a=candidate:0a1b2c3d4e5f6a7b 1 udp 2130706431 198.51.100.20 51000 typ host",
            ETH0_V6,  # the other family is left as it is
            SRFLX,  # reflexive and relayed candidates are never touched
            RELAY,
        ]
        assert section[0] == "m=" + section[0][2:].split(" ")[0] + " 46849 UDP/TLS/RTP/SAVPF 96"
        assert section[1] == "c=IN IP4 198.51.100.20"
        assert "a=rtcp:9 IN IP4 0.0.0.0" in section  # the discard address stays
    assert "10.0.0.5 46849 typ host" not in sdp and "172.17.0.1" not in sdp
    assert sdp.startswith("v=0\r\no=- 4004858778 4004858778 IN IP4 0.0.0.0\r\n") and sdp.endswith("\r\n")


def test_host_addresses_keep_only_their_host_candidates_and_every_reflexive_one() -> None:
    sdp = rewrite_answer(answer(), Announcement.of("", ["10.0.0.5"]))
    for section in sections(sdp):
        assert candidates_of(section) == [ETH0, SRFLX, RELAY]
        assert section[1] == "c=IN IP4 10.0.0.5"
    ipv6_only = rewrite_answer(answer(), Announcement.of("", ["2001:DB8:0::5"]))  # compared as addresses
    for section in sections(ipv6_only):
        assert candidates_of(section) == [ETH0_V6, SRFLX, RELAY]
        assert section[0].split(" ")[1] == "43668"  # the default candidate is now the IPv6 one
        assert section[1] == "c=IN IP6 2001:db8::5"


def test_a_1to1_nat_announces_one_host_candidate_at_the_public_address() -> None:
    sdp = rewrite_answer(answer([ETH0, DOCKER, ETH0_V6]), Announcement.of("203.0.113.50", ["10.0.0.5"]))
    for section in sections(sdp):
        assert candidates_of(section) == [
            "a=candidate:f957a2332b1715da 1 udp 2130706431 203.0.113.50 46849 typ host"
        ]
        assert section[1] == "c=IN IP4 203.0.113.50"
        assert section[0].split(" ")[1] == "46849"


def test_dropping_the_default_candidate_moves_c_and_the_port_to_the_next() -> None:
    sdp = rewrite_answer(answer(), Announcement.of("203.0.113.50", ["172.17.0.1"]))
    for section in sections(sdp):
        assert candidates_of(section)[0].endswith(" 203.0.113.50 51000 typ host")
        assert section[0].split(" ")[1] == "51000"
        assert section[1] == "c=IN IP4 203.0.113.50"


def test_announced_ipv6_address_replaces_ipv6_host_candidates_only() -> None:
    sdp = rewrite_answer(answer([ETH0_V6, ETH0]), Announcement.of("2001:DB8::99"))
    for section in sections(sdp):
        assert candidates_of(section) == [
            "a=candidate:d0bcf3d9c29a2bc8 1 udp 2130706431 2001:db8::99 43668 typ host",
            ETH0,
        ]
        assert section[1] == "c=IN IP6 2001:db8::99"
        assert section[0].split(" ")[1] == "43668"


def test_two_local_addresses_on_one_port_become_one_candidate() -> None:
    twin = "a=candidate:5555aaaa5555aaaa 1 udp 2130706431 172.17.0.1 46849 typ host"
    sdp = rewrite_answer(answer([ETH0, twin]), Announcement.of("203.0.113.50"))
    for section in sections(sdp):
        assert candidates_of(section) == [
            "a=candidate:f957a2332b1715da 1 udp 2130706431 203.0.113.50 46849 typ host"
        ]


@pytest.mark.parametrize(
    "announce",
    [
        Announcement.of("198.51.100.20"),
        Announcement.of("", ["10.0.0.5"]),
        Announcement.of("", ["172.17.0.1", "2001:db8::5"]),
        Announcement.of("203.0.113.50", ["10.0.0.5", "2001:db8::5"]),
        Announcement.of("2001:db8::99", ["2001:db8::5"]),
        Announcement.of("10.0.0.5", ["172.17.0.1"]),  # announcing one of the local addresses
    ],
)
def test_rewriting_twice_changes_nothing_more(announce: Announcement) -> None:
    once = rewrite_answer(answer(), announce)
    assert rewrite_answer(once, announce) == once


def test_a_media_line_left_without_candidates_is_refused_unless_a_relay_remains() -> None:
    with pytest.raises(NoCandidates):
        rewrite_answer(answer([ETH0, DOCKER]), Announcement.of("", ["192.0.2.77"]))
    with pytest.raises(NoCandidates):
        rewrite_answer(answer([ETH0_V6]), Announcement.of("203.0.113.50", ["10.0.0.5"]))
    relayed = rewrite_answer(answer([ETH0, RELAY]), Announcement.of("203.0.113.50", ["192.0.2.77"]))
    for section in sections(relayed):
        assert candidates_of(section) == [RELAY]
        assert section[1] == "c=IN IP4 198.51.100.3"
        assert section[0].split(" ")[1] == "60001"


def test_rejected_media_lines_and_lines_without_candidates_keep_their_port() -> None:
    sdp = answer([ETH0]).replace("m=video 46849", "m=video 0", 1)
    rewritten = rewrite_answer(sdp, Announcement.of("203.0.113.50"))
    video = sections(rewritten)[1]
    assert video[0].startswith("m=video 0 ")
    bare = "\r\n".join(["v=0", "s=-", *media("audio", "0", []), ""])
    assert rewrite_answer(bare, Announcement.of("203.0.113.50", ["10.0.0.5"])) == bare


def test_a_session_level_c_line_follows_the_candidates_it_named() -> None:
    sdp = answer([ETH0]).replace("s=-\r\n", "s=-\r\nc=IN IP4 10.0.0.5\r\n", 1)
    rewritten = rewrite_answer(sdp, Announcement.of("203.0.113.50"))
    assert "s=-\r\nc=IN IP4 203.0.113.50\r\n" in rewritten


def test_lf_line_endings_are_kept() -> None:
    sdp = answer([ETH0]).replace("\r\n", "\n")
    rewritten = rewrite_answer(sdp, Announcement.of("203.0.113.50"))
    assert "\r" not in rewritten and "203.0.113.50 46849 typ host\n" in rewritten


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not sdp at all",
        "v=0\r\nm=\r\nc=\r\na=candidate:\r\n",
        "m=audio x y\r\nc=IN IP4 nowhere\r\na=candidate:1 1 udp 1 10.0.0.5 notaport typ host\r\n",
        "m=audio 9 RTP\r\na=candidate:1 1 udp 1 host.local 5000 typ host\r\na=candidate:short line\r\n",
        "m=audio 9 RTP\r\na=candidate:1 1 udp 1 10.0.0.5 5000 kind host\r\n",
        "\x00\xff\r\nm=audio 9/2 RTP\r\nc=IN IP4\r\na=candidate:1 1 udp 1 10.0.0.5 5000 typ host\r\n",
    ],
)
def test_garbage_is_left_as_it_is(garbage: str) -> None:
    announce = Announcement.of("203.0.113.50")
    rewritten = rewrite_answer(garbage, announce)
    assert rewrite_answer(rewritten, announce) == rewritten
    # What stays: every line but a well-formed host candidate's and the c= line of its media section.
    rewritable = "10.0.0.5 5000 typ host" in garbage
    for line in garbage.split("\r\n"):
        if "10.0.0.5 5000 typ host" not in line and not (rewritable and line.startswith("c=")):
            assert line in rewritten.split("\r\n")


def test_random_damage_to_an_answer_never_raises_anything_but_no_candidates() -> None:
    rng = random.Random(8)
    base = answer()
    announce = Announcement.of("203.0.113.50", ["10.0.0.5", "2001:db8::5"])
    for _ in range(300):
        chars = list(base)
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice([" ", "\r\n", ":", "x", "9", "", "=", "a=candidate:"])
        damaged = "".join(chars)
        with contextlib.suppress(NoCandidates):
            rewrite_answer(damaged, announce)


# --- settings ---------------------------------------------------------------------------------------


def test_settings_accept_addresses_and_write_them_canonically() -> None:
    settings = Settings(
        voice_announced_address=" 2001:DB8:0::1 ", voice_host_addresses="10.0.0.5, 10.0.0.5,fd00::2"
    )
    assert settings.voice_announced_address == "2001:db8::1"
    assert settings.voice_host_addresses == "10.0.0.5,fd00::2"
    assert announcement(settings) == Announcement.of("2001:db8::1", ["10.0.0.5", "fd00::2"])
    assert not announcement(Settings()).changes_anything


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("voice_announced_address", "chat.example.com", "is not an IPv4 or IPv6 address"),
        ("voice_announced_address", "203.0.113.5:3478", "is not an IPv4 or IPv6 address"),
        ("voice_announced_address", "0.0.0.0", "cannot be a host's address"),
        ("voice_announced_address", "224.0.0.1", "cannot be a host's address"),
        ("voice_announced_address", "fe80::1%eth0", "has a scope"),
        ("voice_host_addresses", "10.0.0.5,eth0", "is not an IPv4 or IPv6 address"),
        ("voice_host_addresses", "::", "cannot be a host's address"),
    ],
)
def test_settings_refuse_what_is_not_an_address(field: str, value: str, said: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**{field: value})
    assert said in str(refused.value) and f"BEEP_{field.upper()}" in str(refused.value)


def test_parse_address_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^SETTING: 'x' is not"):
        parse_address("x", "SETTING")


def test_start_is_refused_when_no_host_address_is_this_machines() -> None:
    present = get_host_addresses(True, True)
    assert present, "this machine needs a non-loopback address"
    with pytest.raises(
        UnusableSettings, match=re.escape("none of 192.0.2.222 is an address of this machine")
    ):
        check_voice_settings(Settings(voice_host_addresses="192.0.2.222"))
    # One present is enough (the others are logged); an announced address alone needs nothing local.
    check_voice_settings(Settings(voice_host_addresses=f"192.0.2.222,{present[0]}"))
    check_voice_settings(Settings(voice_announced_address="203.0.113.50"))


def test_missing_and_ambiguous_addresses() -> None:
    present = ["10.0.0.5", "172.17.0.1", "2001:db8::5"]
    assert Announcement.of("", ["10.0.0.5", "10.9.9.9"]).missing(present) == [parse_address("10.9.9.9", "")]
    with pytest.raises(ValueError, match=re.escape("it has 10.0.0.5, 172.17.0.1, 2001:db8::5")):
        Announcement.of("", ["10.9.9.9"]).missing(present)
    assert Announcement.of("203.0.113.50").ambiguous(present) == ["10.0.0.5", "172.17.0.1"]
    assert Announcement.of("2001:db8::99").ambiguous(present) == []
    assert Announcement.of("203.0.113.50", ["10.0.0.5"]).ambiguous(present) == []


def beep(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BEEP_")}
    return subprocess.run(
        [sys.executable, "-m", "beep.cli", *args],
        env={**clean, "BEEP_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_beep_refuses_to_start_with_voice_settings_it_cannot_use(tmp_path: Path) -> None:
    named = beep(
        tmp_path, "serve", "channels", "--port", "0", BEEP_VOICE_ANNOUNCED_ADDRESS="chat.example.com"
    )
    assert named.returncode == 2
    assert "BEEP_VOICE_ANNOUNCED_ADDRESS: 'chat.example.com' is not an IPv4 or IPv6 address" in named.stderr
    absent = beep(tmp_path, "serve", "channels", "--port", "0", BEEP_VOICE_HOST_ADDRESSES="192.0.2.222")
    assert absent.returncode == 1
    assert "beep serve channels: BEEP_VOICE_HOST_ADDRESSES: none of 192.0.2.222" in absent.stderr
    assert "Traceback" not in named.stderr + absent.stderr
