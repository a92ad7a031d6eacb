"""What one process shares across requests: settings, databases, the event bus, the token verifier,
the presence store, the rate limiter."""

from __future__ import annotations

from dataclasses import dataclass

from db.engines import Database
from db.ids import configure_logical_shards
from media.pictures import Pictures, load_or_create_signing_keys
from media.signing import UrlSigner
from media.storage import LocalDiskStorage
from subgraphs.kernel.auth import JwksCache, TokenVerifier
from subgraphs.kernel.bus import EventBus, create_bus
from subgraphs.kernel.presence import PresenceStore, create_presence_store
from subgraphs.kernel.ratelimit import RateLimiter, create_rate_limiter
from subgraphs.kernel.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    bus: EventBus
    verifier: TokenVerifier
    presence: PresenceStore
    rate_limiter: RateLimiter
    pictures: Pictures

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        configure_logical_shards(settings.logical_shards)
        database = Database(
            settings.resolved_directory_url, settings.shard_map, pool_size=settings.db_pool_size
        )
        verifier = TokenVerifier(
            JwksCache(settings.resolved_jwks_url),
            settings.issuer_url,
            settings.jwt_audience,
            extra_issuers=[(iss, JwksCache(url)) for iss, url in settings.extra_trusted_issuers],
        )
        presence = create_presence_store(settings.redis_url)
        bus = create_bus(settings.redis_url)
        limiter = create_rate_limiter(settings.redis_url)
        return cls(settings, database, bus, verifier, presence, limiter, _pictures(settings))

    async def close(self) -> None:
        await self.presence.close()
        await self.bus.close()
        await self.rate_limiter.close()
        await self.database.dispose()


def _pictures(settings: Settings) -> Pictures:
    keys = load_or_create_signing_keys(settings.media_signing_keys, settings.data_dir / "media-signing-keys")
    signer = UrlSigner.from_spec(keys, base_url=f"{settings.resolved_media_public_url}/files")
    storage = LocalDiskStorage(settings.resolved_media_dir)
    return Pictures(storage, signer, url_ttl_seconds=settings.media_url_ttl_seconds)


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
