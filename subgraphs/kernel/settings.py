"""Typed settings, read once from `BEEP_*` environment variables (the table: docs/configuration.md)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.shardmap import ShardMap
from media.voice.announce import parse_address, parse_addresses
from subgraphs.kernel.logtokens import generate_key as generate_log_token_key
from subgraphs.kernel.redis_client import SENTINEL_SCHEME, parse_sentinel_url

SUBGRAPH_NAMES = ("users", "servers", "channels", "messages", "friends", "webhooks")


class UnusableSettings(Exception):
    """Settings that are well-formed but cannot work on this machine; the message is for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BEEP_", frozen=True, extra="ignore")

    mode: Literal["embedded", "full"] = "embedded"
    # A mutation returning an error code it does not declare fails instead of only logging it
    # (kernel/web/mutations.py `DeclaredErrors`); the test harness turns it on.
    strict_errors: bool = False
    data_dir: Path = Path("var")

    # Storage: empty means the embedded SQLite files under data_dir.
    directory_url: str = ""
    shard_databases: str = ""
    logical_shards: int = Field(default=64, ge=1, le=1024)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Connections each process opens per PostgreSQL database before it serves (db/engines.py `warm`), at
    # most its pool's size (twice db_pool_size). Each counts against the database's max_connections.
    db_pool_warm: int = Field(default=4, ge=0, le=400)

    # Event bus: Redis when set, in-process otherwise (one process only). `redis://host:port/db`, or
    # `redis+sentinel://host:port,host:port/MASTER[/db]` for a Sentinel-managed master (docs/redis-ha.md).
    redis_url: str = ""

    # Identity: the built-in issuer's URL (its tokens' `iss`); tokens are verified against its JWKS (or
    # Keycloak's). Empty: http://127.0.0.1:<port>/users, where `beep dev` / `beep serve all` serve it.
    issuer_url: str = ""
    jwks_url: str = ""
    jwt_audience: str = "beep"
    issuer_key_file: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3600)
    # Who holds credentials: the built-in issuer (embedded default) or Keycloak (production). Tokens of
    # Keycloak's realm are trusted whenever keycloak_url is set, the built-in issuer's always.
    identity: Literal["builtin", "keycloak"] = "builtin"
    keycloak_url: str = ""
    keycloak_realm: str = "beep"
    keycloak_client_id: str = "beep-api"
    keycloak_client_secret: str = ""
    keycloak_password_check_client_id: str = "beep-api-password-check"
    # Presence: a live connection counts for this long after its last heartbeat (a third of it apart).
    presence_ttl_seconds: int = Field(default=30, ge=3, le=600)

    # Notifications are an inbox: each user keeps the newest `keep_per_user`, none older than `keep_days`;
    # the worker prunes every `prune_seconds` (subgraphs/users/notifications/retention.py).
    notification_keep_days: float = Field(default=90.0, gt=0, le=3650)
    notification_keep_per_user: int = Field(default=1000, ge=10)
    notification_prune_seconds: float = Field(default=3600.0, ge=1)

    # Events: how often the outbox relay sweeps every store for rows a lost hint did not announce, and
    # how long relayed events stay replayable (`messageEvents(after:)`; older cursors get CURSOR_EXPIRED).
    outbox_sweep_seconds: float = Field(default=5.0, gt=0, le=300)
    outbox_retention_seconds: float = Field(default=86_400.0, ge=60)
    # Above one event per linger (over the last second) the relay and the consumers wait this long before
    # a round, so that one round (a few transactions) takes the commits of many requests: their cost per
    # event falls as the rate rises. The relay's is on the live path (each event waits up to that much
    # more); the consumers' (notifications, search indexing, link previews) are not. Below, no waiting.
    outbox_relay_linger_seconds: float = Field(default=0.025, ge=0, le=1)
    outbox_consumer_linger_seconds: float = Field(default=0.25, ge=0, le=10)

    # Messages a member may send to one channel per window (Discord allows 5 per 5 s); over it: RATE_LIMITED.
    message_send_limit: int = Field(default=10, ge=1)
    message_send_window_seconds: int = Field(default=10, ge=1, le=3600)

    # Link previews (worker): on by default. The fetcher refuses private addresses; tests allow-list
    # loopback (comma-separated CIDRs) and may point oEmbed providers elsewhere ("YouTube=URL;Spotify=URL").
    link_previews: bool = True
    preview_allowed_networks: str = ""
    preview_oembed_endpoints: str = ""

    # Message search: "sql" (full-text in the tenant's shard, the default) or "solr" (a core per channel
    # on the node at search_solr_url, e.g. http://127.0.0.1:8983/solr).
    search_backend: Literal["sql", "solr"] = "sql"
    search_solr_url: str = ""
    # Solr makes writes searchable within this many ms (a soft commit, batched across writes; the
    # configset's 15 s hard autoCommit and update log make them durable). 0: commit each write at once.
    search_solr_commit_within_ms: int = Field(default=1000, ge=0, le=60_000)

    # HTTP
    host: str = "127.0.0.1"
    port: int = 4100
    router_port: int = 4000
    allowed_origins: str = ""  # comma-separated browser origins allowed to open subgraph WebSockets
    # Each subgraph's own limits (kernel/web/limits.py), a little above the router's (depth 12, 2,000 tokens,
    # 30 aliases: a subgraph's share of an operation gains `_entities`, keys and __typename), so that a
    # request reaching a subgraph anyway cannot exhaust its memory. Past one: GRAPHQL_VALIDATION_FAILED;
    # past the response budget (list items in one response, counted while they are completed):
    # RESPONSE_TOO_LARGE, and the work stops.
    max_query_depth: int = Field(default=16, ge=2, le=100)
    max_query_tokens: int = Field(default=5000, ge=100, le=100_000)
    max_query_aliases: int = Field(default=60, ge=0, le=1000)
    max_response_items: int = Field(default=50_000, ge=100, le=10_000_000)

    # Observability
    service_name: str = "beep"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Personal data in logs is written as tokens made with this key (kernel/logtokens.py; `beep logs
    # new-key` makes one, `beep logs reveal` reads tokens back). Every process of a deployment and the
    # router hold the same value; empty: one kept in <data_dir>/log-token-key (one machine: `beep dev`).
    log_token_key: str = ""
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    # The OTLP collector's base URL (traces go to <endpoint>/v1/traces, HTTP/protobuf); empty: the
    # OpenTelemetry default (OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318).
    otel_endpoint: str = ""
    # The share of new traces kept (a caller's decision, e.g. the router's, is followed).
    otel_sampling_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    # Files
    media_dir: Path | None = None
    # Download URLs: `kid:base64url-secret[,kid:secret...]` (the first signs, all verify); empty: a key
    # file in the data dir, created on first start (replicas must share it, or set this).
    media_signing_keys: str = ""
    # Where clients reach the media app (`/files/...` follows); empty: the public URL + /media (the router
    # forwards /media/files/... to the users service, which serves it).
    media_public_url: str = ""
    media_url_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    # Where files are kept: `local` (media_dir) or `s3` (any S3-compatible store; production).
    media_storage: Literal["local", "s3"] = "local"
    s3_bucket: str = "beep-media"
    s3_endpoint_url: str = ""  # empty: AWS itself
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""  # empty: botocore's usual chain (environment, instance role...)
    s3_secret_access_key: str = ""
    s3_prefix: str = ""
    # `beep backup` to s3://…: the backups' own store, off-site (empty: the media store's endpoint and
    # credentials above). Keep them in another account or region than the data they protect.
    backup_s3_endpoint_url: str = ""
    backup_s3_region: str = ""
    backup_s3_access_key_id: str = ""
    backup_s3_secret_access_key: str = ""
    # Message attachments: all files of one message together at most this many bytes (10 files at most);
    # their download URLs live this long (plus up to a minute of rounding).
    attachment_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    attachment_url_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # How often each messages process runs purge jobs left behind (kernel/tenancy/attachment_files.py); 0:
    # never.
    attachment_sweep_seconds: float = Field(default=30.0, ge=0, le=3600)

    # Webhooks: executions per webhook per window (Discord's bucket is 5 per 2 s); bot access tokens'
    # lifetime (what a bot token is exchanged for: short, so a revoked bot token stops quickly).
    webhook_rate_count: int = Field(default=5, ge=1, le=10_000)
    webhook_rate_window_seconds: int = Field(default=2, ge=1, le=3600)
    bot_access_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    # Where clients reach the router: webhook and (unless media_public_url is set) file URLs are built on it.
    # Empty: http://127.0.0.1:<router port>.
    public_url: str = ""

    # Voice (media/voice): the media server's own ICE servers (comma-separated URLs; empty: host
    # candidates only, never aiortc's default STUN server), those handed to clients, and TURN (coturn's
    # use-auth-secret: time-limited credentials derived from the shared secret).
    voice_ice_servers: str = ""
    # What the media server's answers announce: the address clients reach it at (a 1:1 NAT's public IP;
    # host candidates take it, same port), and the local addresses whose host candidates are announced
    # (comma-separated; empty: every interface's). Checked: IP literals, or empty.
    voice_announced_address: str = ""
    voice_host_addresses: str = ""
    voice_stun_urls: str = ""
    voice_turn_urls: str = ""
    voice_turn_secret: str = ""
    voice_turn_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    voice_room_limit: int = Field(default=16, ge=1, le=100)
    voice_disconnect_seconds: float = Field(default=10.0, ge=2, le=120)
    # Several processes hosting calls: their internal base URLs (each call is owned by one, by rendezvous
    # hashing), this process's own among them (empty: it hosts none, serving only the API), and the
    # secret of their internal endpoint.
    voice_nodes: str = ""
    voice_node_url: str = ""
    voice_internal_secret: str = ""
    # Signs what Beep's own processes say to each other: the router's fan-out tier asking the subgraphs
    # who may receive a shared stream, and the credential it opens that stream with (kernel/web/internal.py).
    # Every subgraph and router of a deployment holds the same value; empty: a random one is kept in
    # <data_dir>/internal-secret (one machine: `beep dev`).
    internal_secret: str = ""

    @model_validator(mode="after")
    def _voice_nodes_hang_together(self) -> Settings:
        """Checked at start: a misconfigured call host would otherwise fail at the first join."""
        nodes = [n.strip().rstrip("/") for n in self.voice_nodes.split(",") if n.strip()]
        if nodes and not self.voice_internal_secret:
            raise ValueError("BEEP_VOICE_NODES needs BEEP_VOICE_INTERNAL_SECRET")
        if self.voice_node_url and self.voice_node_url.rstrip("/") not in nodes:
            raise ValueError("BEEP_VOICE_NODE_URL must be one of BEEP_VOICE_NODES (or empty: host no call)")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value.startswith(f"{SENTINEL_SCHEME}://"):
            parse_sentinel_url(value)  # InvalidRedisUrl (a ValueError): refused at start, not at first use
        return value

    @field_validator("voice_announced_address")
    @classmethod
    def _one_address(cls, value: str) -> str:
        return str(parse_address(value, "BEEP_VOICE_ANNOUNCED_ADDRESS")) if value.strip() else ""

    @field_validator("voice_host_addresses")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return ",".join(map(str, parse_addresses(value, "BEEP_VOICE_HOST_ADDRESSES")))

    @cached_property
    def resolved_internal_secret(self) -> str:
        return self.internal_secret or self._kept_secret("internal-secret", lambda: secrets.token_urlsafe(32))

    @cached_property
    def resolved_log_token_key(self) -> str:
        return self.log_token_key or self._kept_secret("log-token-key", generate_log_token_key)

    def _kept_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret in <data_dir>/`name`, made by the first process of this machine that needs it."""
        path = self.data_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of this machine made it first
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(make())
        return path.read_text().strip()

    @cached_property
    def resolved_directory_url(self) -> str:
        return self.directory_url or f"sqlite+aiosqlite:///{self.data_dir.resolve()}/directory.db"

    @cached_property
    def shard_map(self) -> ShardMap:
        spec = self.shard_databases or (
            f"0-{self.logical_shards - 1}=sqlite+aiosqlite:///{self.data_dir.resolve()}/shards/shard_{{shard}}.db"
        )
        return ShardMap.parse(spec, self.logical_shards)

    @cached_property
    def resolved_issuer_url(self) -> str:
        return (self.issuer_url or f"http://{_reachable(self.host)}:{self.port}/users").rstrip("/")

    @cached_property
    def resolved_jwks_url(self) -> str:
        return self.jwks_url or f"{self.resolved_issuer_url}/.well-known/jwks.json"

    @cached_property
    def keycloak_issuer(self) -> str:
        return f"{self.keycloak_url.rstrip('/')}/realms/{self.keycloak_realm}" if self.keycloak_url else ""

    @cached_property
    def extra_trusted_issuers(self) -> list[tuple[str, str]]:
        """(issuer, JWKS URL) pairs trusted besides the built-in issuer."""
        if not self.keycloak_issuer:
            return []
        return [(self.keycloak_issuer, f"{self.keycloak_issuer}/protocol/openid-connect/certs")]

    @cached_property
    def resolved_issuer_key_file(self) -> Path:
        return self.issuer_key_file or self.data_dir / "issuer" / "signing-key.pem"

    @cached_property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @cached_property
    def resolved_media_public_url(self) -> str:
        return (self.media_public_url or f"{self.resolved_public_url}/media").rstrip("/")

    @cached_property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.router_port}").rstrip("/")

    @cached_property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]


def _reachable(host: str) -> str:
    """An address this machine reaches a server listening on `host` at (a wildcard: loopback)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising a wildcard, not binding to one
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
