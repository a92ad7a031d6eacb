"""The access cache's hit rate is exported as it is counted (read at scrape time); what it keeps for a
send's statement to check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from subgraphs.kernel.tenancy import access_versions
from subgraphs.kernel.tenancy.access import ChannelAccess, ServerAccess
from subgraphs.kernel.tenancy.permissions import Permission

pytestmark = pytest.mark.unit


def test_hits_and_misses_are_exported() -> None:
    cache = access_versions.CACHE
    hits, misses = cache.hits, cache.misses
    assert cache.get((1, 2), 7, None) is None  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value("beep_access_cache_lookups_total", {"result": "miss"}) == misses + 1
    assert REGISTRY.get_sample_value("beep_access_cache_lookups_total", {"result": "hit"}) == hits
    assert REGISTRY.get_sample_value("beep_access_cache_entries") == len(cache)


def _member_access(timed_out_until: datetime | None = None) -> ChannelAccess:
    server = ServerAccess(1, 2, 3, "PRIVATE", True, frozenset({1}), Permission.SEND_MESSAGES, timed_out_until)
    return ChannelAccess(10, "TEXT", None, server, Permission.SEND_MESSAGES)


def test_a_kept_entry_is_given_for_a_send_to_check_and_goes_when_forgotten_or_due() -> None:
    """`kept` hands out what was stored without comparing versions (the send's statement does), counts a
    hit only when it has one, and never outlives a running timeout."""
    cache = access_versions.ChannelAccessCache()
    placement = access_versions.Placement(1, "TEXT", None, True)
    assert cache.kept((10, 2)) is None and cache.misses == 0  # the read that follows counts the miss
    cache.put((10, 2), 7, placement, _member_access(), "general")
    kept = cache.kept((10, 2))
    assert kept is not None and (kept.version, kept.name, kept.placement) == (7, "general", placement)
    assert cache.hits == 1
    cache.forget((10, 2))
    assert cache.kept((10, 2)) is None
    ended = datetime.now(UTC) - timedelta(seconds=1)  # a timeout already over: no life left
    cache.put((10, 2), 7, placement, _member_access(timed_out_until=ended), "general")
    assert cache.kept((10, 2)) is None


def test_entries_stored_together_lapse_apart_within_the_maximum_age(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(access_versions.time, "monotonic", lambda: now[0])
    cache = access_versions.ChannelAccessCache()
    placement = access_versions.Placement(1, "TEXT", None, True)
    for channel in range(100):
        cache.put((channel, 2), 7, placement, _member_access(), "general")
    lapsed_at: dict[int, float] = {}
    for tick in range(0, 62):
        now[0] = 1000.0 + tick
        for channel in range(100):
            if channel not in lapsed_at and cache.kept((channel, 2)) is None:
                lapsed_at[channel] = tick
    assert len(lapsed_at) == 100  # none outlives the maximum age
    assert all(45 <= t <= 60 for t in lapsed_at.values()), lapsed_at
    assert len(set(lapsed_at.values())) >= 5  # not all in the same second
