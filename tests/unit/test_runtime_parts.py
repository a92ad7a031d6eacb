"""A context's per-process parts live on the runtime (Runtime.part), not in module caches keyed by
id(runtime): built once per runtime, never shared with another one."""

from __future__ import annotations

from typing import Any, cast

import pytest

from subgraphs.kernel.web.runtime import Runtime

pytestmark = pytest.mark.unit


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def bare_runtime() -> Runtime:
    """No service is touched by `part`: the fields stay empty."""
    return Runtime(*cast(list[Any], [None] * 9))


def test_a_part_is_built_once_per_runtime_and_never_shared() -> None:
    built: list[Runtime] = []

    def build(runtime: Runtime) -> Hub:
        built.append(runtime)
        return Hub(runtime)

    first, second = bare_runtime(), bare_runtime()
    assert first.part(Hub, build) is first.part(Hub, build)
    assert second.part(Hub, build) is not first.part(Hub, build)
    assert second.part(Hub, build).runtime is second
    assert built == [first, second]
