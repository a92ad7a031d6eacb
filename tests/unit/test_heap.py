"""kernel/heap.py: a server process settles its heap once after start; nothing else does."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from subgraphs.kernel import heap


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    heap._enabled = False


def test_only_a_server_process_settles_its_heap(restored: None) -> None:
    before = gc.get_threshold()
    heap.settle()  # a test process, an app built in-process: nothing frozen, nothing changed
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_settling_freezes_what_start_up_built_and_raises_the_young_threshold(restored: None) -> None:
    heap.settle_after_start()
    heap.settle()
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    frozen = gc.get_freeze_count()
    heap.settle()  # once: a second lifespan start freezes nothing more
    # (A frozen object whose last reference goes is still freed: the count may fall, never rise. The suite
    # runs this after integration tests whose threads may drop one meanwhile.)
    assert gc.get_freeze_count() <= frozen
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
