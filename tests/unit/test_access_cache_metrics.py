"""The access cache's hit rate is exported as it is counted (read at scrape time)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from subgraphs.kernel.tenancy import access_versions

pytestmark = pytest.mark.unit


def test_hits_and_misses_are_exported() -> None:
    cache = access_versions.CACHE
    hits, misses = cache.hits, cache.misses
    assert cache.get((1, 2), 7, None) is None  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value("beep_access_cache_lookups_total", {"result": "miss"}) == misses + 1
    assert REGISTRY.get_sample_value("beep_access_cache_lookups_total", {"result": "hit"}) == hits
    assert REGISTRY.get_sample_value("beep_access_cache_entries") == len(cache)
