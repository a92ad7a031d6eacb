"""Where clients and processes reach Beep follows from two ports (or the public URL): the issuer from the
port the subgraphs listen on, webhook and file URLs from the router's public URL."""

from __future__ import annotations

import pytest

from subgraphs.kernel.settings import Settings

DERIVED = ("BEEP_ISSUER_URL", "BEEP_JWKS_URL", "BEEP_PUBLIC_URL", "BEEP_MEDIA_PUBLIC_URL", "BEEP_HOST")


@pytest.fixture(autouse=True)
def _no_url_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*DERIVED, "BEEP_PORT", "BEEP_ROUTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_defaults_are_the_default_ports() -> None:
    settings = Settings()
    assert settings.resolved_issuer_url == "http://127.0.0.1:4100/users"
    assert settings.resolved_public_url == "http://127.0.0.1:4000"
    assert settings.resolved_media_public_url == "http://127.0.0.1:4000/media"


def test_other_ports_move_every_url_with_them() -> None:
    """`BEEP_PORT=4900 beep dev --port 4800`: the issuer (and its JWKS) at 4900, everything public at 4800."""
    settings = Settings(port=4900, router_port=4800)
    assert settings.resolved_issuer_url == "http://127.0.0.1:4900/users"
    assert settings.resolved_jwks_url == "http://127.0.0.1:4900/users/.well-known/jwks.json"
    assert settings.resolved_public_url == "http://127.0.0.1:4800"
    assert settings.resolved_media_public_url == "http://127.0.0.1:4800/media"


def test_files_follow_the_public_url() -> None:
    settings = Settings(public_url="https://chat.example.com/")
    assert settings.resolved_public_url == "https://chat.example.com"
    assert settings.resolved_media_public_url == "https://chat.example.com/media"
    assert settings.resolved_issuer_url == "http://127.0.0.1:4100/users"  # internal: not the public URL


def test_explicit_urls_win() -> None:
    settings = Settings(
        port=4900,
        issuer_url="https://sso.example.com/realms/beep/",
        media_public_url="https://files.example.com/m/",
        public_url="https://chat.example.com",
    )
    assert settings.resolved_issuer_url == "https://sso.example.com/realms/beep"
    assert settings.resolved_jwks_url == "https://sso.example.com/realms/beep/.well-known/jwks.json"
    assert settings.resolved_media_public_url == "https://files.example.com/m"


@pytest.mark.parametrize(
    ("host", "reached_at"),
    [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"), ("::1", "[::1]")],
)
def test_the_issuer_is_where_this_machine_reaches_the_listener(host: str, reached_at: str) -> None:
    assert Settings(host=host, port=4900).resolved_issuer_url == f"http://{reached_at}:4900/users"
