"""What the users context builds once per process: its identity provider and sign-in throttle."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.kernel.web.runtime import Runtime
from subgraphs.users.builtin import BuiltinProvider
from subgraphs.users.identity import IdentityProvider
from subgraphs.users.issuer import issuer_for
from subgraphs.users.keycloak import KeycloakProvider
from subgraphs.users.throttle import MemoryCounters, RedisCounters, SignInThrottle


@dataclass(frozen=True)
class UsersServices:
    provider: IdentityProvider
    throttle: SignInThrottle


def services_for(runtime: Runtime) -> UsersServices:
    """The runtime's one set (as issuer_for): BEEP_IDENTITY picks the provider."""
    return runtime.part(UsersServices, _build)


def _build(runtime: Runtime) -> UsersServices:
    settings = runtime.settings
    provider: IdentityProvider = (
        KeycloakProvider(settings)
        if settings.identity == "keycloak"
        else BuiltinProvider(issuer_for(runtime), settings.refresh_token_ttl_seconds)
    )
    counters = RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters()
    return UsersServices(provider, SignInThrottle(counters))
