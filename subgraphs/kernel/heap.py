"""The garbage collector's settings for a long-running server process.

A subgraph process builds a large heap once (the schema, SQLAlchemy's tables for every shard schema, the
imported modules: ~150,000 objects) and allocates thousands of short-lived ones per request. With
CPython's defaults a full collection walks all of it — 40-50 ms on this project's 2-core machine, a pause
of the single-threaded process that every request and live event in flight waits out (bench/README.md).
`settle()` runs once the process has started: everything built so far is moved out of the collector's
sight (`gc.freeze()`: it lives as long as the process anyway), so a full collection walks only what the
requests left behind; and the first threshold is raised so that the young collections a request triggers
come tens of times less often (the objects a request frees by reference count never reach them).
"""

from __future__ import annotations

import gc

# Allocations (net, of tracked objects) before a young collection: CPython's default is 700, fewer than
# one GraphQL request makes.
YOUNG_THRESHOLD = 20_000

# Only a process that is a server and nothing else settles its heap (`beep serve`, `beep worker` set
# this): frozen objects are never collected, so a test process that builds and drops apps must not.
_enabled = False


def settle_after_start() -> None:
    global _enabled
    _enabled = True


def settle() -> None:
    """Once start-up is done (the lifespans call it): collect what start-up left over, freeze the rest,
    raise the young threshold. Nothing unless `settle_after_start()` was called."""
    global _enabled
    if not _enabled:
        return
    _enabled = False  # once
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
