"""What one process shares across requests: settings, databases, the event bus, the token verifier,
the presence store, the rate limiter, the leases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from db.engines import Database
from db.ids import configure_logical_shards
from media.attachments import Attachments
from media.pictures import Pictures, load_or_create_signing_keys
from media.signing import UrlSigner
from media.storage import FileStorage, LocalDiskStorage
from subgraphs.kernel.auth import JwksCache, TokenVerifier
from subgraphs.kernel.events.bus import EventBus, create_bus
from subgraphs.kernel.leases import Leases, create_leases
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.presence import PresenceStore, create_presence_store
from subgraphs.kernel.web.ratelimit import RateLimiter, create_rate_limiter

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    database: Database
    bus: EventBus
    verifier: TokenVerifier
    presence: PresenceStore
    rate_limiter: RateLimiter
    pictures: Pictures
    attachments: Attachments
    leases: Leases
    # What a context builds once per process on top of these (the users context's identity provider and
    # token issuer, the channels context's voice hub): built on first use, kept here so that it lives and
    # dies with this runtime (see `part`).
    _parts: dict[type, Any] = field(default_factory=dict, repr=False)

    def part(self, kind: type[T], build: Callable[[Runtime], T]) -> T:
        """This runtime's one `kind`, built by `build` on first use. The kernel knows no context: a context
        keys its own parts by their class (no module-level cache keyed by `id(runtime)`, which a later
        runtime may reuse)."""
        found = self._parts.get(kind)
        if found is None:
            found = self._parts[kind] = build(self)
        return found  # type: ignore[no-any-return]

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        configure_logical_shards(settings.logical_shards)
        database = Database(
            settings.resolved_directory_url, settings.shard_map, pool_size=settings.db_pool_size
        )
        verifier = TokenVerifier(
            JwksCache(settings.resolved_jwks_url),
            settings.resolved_issuer_url,
            settings.jwt_audience,
            extra_issuers=[(iss, JwksCache(url)) for iss, url in settings.extra_trusted_issuers],
        )
        presence = create_presence_store(settings.redis_url)
        bus = create_bus(settings.redis_url)
        limiter = create_rate_limiter(settings.redis_url)
        pictures, attachments = _media(settings)
        leases = create_leases(settings.redis_url)
        return cls(settings, database, bus, verifier, presence, limiter, pictures, attachments, leases)

    async def close(self) -> None:
        await self.presence.close()
        await self.bus.close()
        await self.rate_limiter.close()
        await self.leases.close()
        await self.database.dispose()
        close = getattr(self.pictures.storage, "close", None)  # S3's connection pool
        if close is not None:
            await close()


def _media(settings: Settings) -> tuple[Pictures, Attachments]:
    keys = load_or_create_signing_keys(settings.media_signing_keys, settings.data_dir / "media-signing-keys")
    signer = UrlSigner.from_spec(keys, base_url=f"{settings.resolved_media_public_url}/files")
    storage = create_storage(settings)
    pictures = Pictures(storage, signer, url_ttl_seconds=settings.media_url_ttl_seconds)
    attachments = Attachments(
        storage,
        signer,
        url_ttl_seconds=settings.attachment_url_ttl_seconds,
        max_bytes=settings.attachment_max_bytes,
    )
    return pictures, attachments


def create_storage(settings: Settings) -> FileStorage:
    """The configured backend: local disk (embedded default) or an S3-compatible store."""
    if settings.media_storage == "s3":
        from media.s3 import S3Storage  # botocore takes a second to import: only when used

        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key or None,
            prefix=settings.s3_prefix,
            max_size=max(settings.attachment_max_bytes, 25 * 1024 * 1024),
        )
    return LocalDiskStorage(
        settings.resolved_media_dir, max_size=max(settings.attachment_max_bytes, 25 * 1024 * 1024)
    )


class RuntimeHolder:
    """Set by the process's lifespan, read by every mounted subgraph (there is one runtime per process)."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None

    def set(self, runtime: Runtime | None) -> None:
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the runtime is not started (lifespan did not run)")
        return self._runtime
