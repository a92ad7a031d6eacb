"""The search backend this deployment uses (BEEP_SEARCH_BACKEND)."""

from __future__ import annotations

from subgraphs.kernel.settings import Settings
from subgraphs.messages.search.backend import SearchBackend
from subgraphs.messages.search.sql import SqlSearchBackend


def backend_for(settings: Settings) -> SearchBackend:
    return SqlSearchBackend()
