"""Telling "the database is not reachable right now" apart from a bug.

During a failover (the primary lost, a replica promoted) requests fail for a few seconds: pooled
connections break, new ones find no writable host, a write may land on a host that just became read-only.
Those are the client's cue to retry (UNAVAILABLE), not a server error; everything else stays one.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import DBAPIError

# SQLSTATEs: 08xxx connection exceptions; 57P01-57P03 the server shutting down, crashed or starting;
# 25006 a write sent to a server in recovery (a standby, or a primary just demoted).
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "25006")
# asyncpg's own classes for a host that does not match `target_session_attrs` (no primary yet) and for
# a connection that died under a statement; by name, so that SQLite-only installs need not import it.
_UNAVAILABLE_CLASSES = {
    "TargetServerAttributeNotMatched",
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
}


_CLOSED_TEXTS = ("connection is closed", "connection was closed")


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 16:
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return seen


def database_unavailable(error: BaseException) -> bool:
    chain = _chain(error)
    from_database = _raised_by_database(chain)
    for link in chain:
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        state = str(getattr(link, "sqlstate", "") or "")
        if state.startswith("08") or state in _UNAVAILABLE_STATES:
            return True
        if type(link).__name__ in _UNAVAILABLE_CLASSES:
            return True
        # A refused or reset socket, or a pooled connection used again after its server went away (asyncpg
        # says only "connection is closed", an InterfaceError like misuse errors: the text decides), is
        # the database's only when its driver raised it; the same OSError from an HTTP call is not.
        if from_database and (
            isinstance(link, ConnectionError | asyncio.TimeoutError)
            or any(text in str(link) for text in _CLOSED_TEXTS)
        ):
            return True
    return False


def _raised_by_database(chain: list[BaseException]) -> bool:
    for link in chain:
        if isinstance(link, DBAPIError):
            return True
        trace = link.__traceback__
        while trace is not None:
            if str(trace.tb_frame.f_globals.get("__name__", "")).startswith(("asyncpg", "sqlalchemy")):
                return True
            trace = trace.tb_next
    return False
