"""The schema extensions every subgraph runs, in order."""

from __future__ import annotations

from collections.abc import Callable

from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache

from subgraphs.kernel.metrics import OperationMetrics
from subgraphs.kernel.tracing import OperationTracing
from subgraphs.kernel.web.error_masking import MaskUnexpectedErrors, RefuseInvalidText
from subgraphs.kernel.web.limits import RequestLimits
from subgraphs.kernel.web.live_signal import LiveSignalResult


def schema_extensions() -> list[type[SchemaExtension] | Callable[[], SchemaExtension]]:
    """What every subgraph schema runs: operation tracing and metrics, masking of unexpected errors, the
    subgraph's own limits (kernel/web/limits.py; with its executor, `BudgetedExecution`), the live signal's
    mark (kernel/web/live_signal.py), and caches of parsed
    and validated documents (the router sends the same text for an operation every time; parsing and
    validation were the largest single cost per request in the benchmarks)."""
    # The cache extensions are built per request; their LRU caches are shared per size across instances.
    return [
        OperationTracing,
        OperationMetrics,  # before the masking: it leaves the operation after, so it sees masked errors
        MaskUnexpectedErrors,
        RequestLimits,  # before parsing (too many tokens), and the depth and alias validation rule
        RefuseInvalidText,  # before the parser cache: raises on entering the parse hook
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        LiveSignalResult,  # marks the result that answers a subscription's live signal
    ]
