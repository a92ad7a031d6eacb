"""The search backend this deployment uses (BEEP_SEARCH_BACKEND, BEEP_SEARCH_SOLR_URL)."""

from __future__ import annotations

from subgraphs.kernel.settings import Settings
from subgraphs.messages.search.backend import SearchBackend
from subgraphs.messages.search.solr import SolrSearchBackend
from subgraphs.messages.search.sql import SqlSearchBackend


def backend_for(settings: Settings) -> SearchBackend:
    if settings.search_backend == "solr":
        if not settings.search_solr_url:
            raise RuntimeError("BEEP_SEARCH_BACKEND=solr needs BEEP_SEARCH_SOLR_URL")
        return SolrSearchBackend(
            settings.search_solr_url, commit_within_ms=settings.search_solr_commit_within_ms
        )
    return SqlSearchBackend()
