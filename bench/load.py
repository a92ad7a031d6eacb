"""GraphQL over one shared httpx connection pool, a bounded closed-loop load generator, and percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


class GraphQLFailure(Exception):
    pass


class Gql:
    """Posts operations through one `httpx.AsyncClient` (keep-alive pool shared by all workers)."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> None:
        self.http = http
        self.url = url
        self.headers = headers or {}  # e.g. the internal credential, for a subgraph called directly

    async def data(self, query: str, variables: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = self.headers | ({"authorization": f"Bearer {token}"} if token else {})
        response = await self.http.post(
            self.url, json={"query": query, "variables": variables}, headers=headers
        )
        try:
            body = response.json()
        except ValueError as exc:
            raise GraphQLFailure(f"HTTP {response.status_code}: {response.text[:200]}") from exc
        if body.get("errors") or body.get("data") is None:
            raise GraphQLFailure(f"HTTP {response.status_code}: {str(body.get('errors'))[:300]}")
        data: dict[str, Any] = body["data"]
        return data


def pooled_client(connections: int, keepalive_expiry: float = 5.0) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=keepalive_expiry
    )
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_summary(values_ms: list[float]) -> dict[str, float | int]:
    values = sorted(values_ms)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "mean_ms": round(sum(values) / len(values), 2),
        "max_ms": round(values[-1], 2),
    }


@dataclass
class LoadOutcome:
    concurrency: int
    requested: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    capped: bool = False

    def summary(self) -> dict[str, Any]:
        completed = len(self.latencies_ms)
        return {
            "concurrency": self.concurrency,
            "requested": self.requested,
            "completed_ok": completed,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "hit_time_cap": self.capped,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_rps": round(completed / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "latency": latency_summary(self.latencies_ms),
        }


Operation = Callable[[int, int], Awaitable[None]]  # (worker index, request index)


async def closed_loop(concurrency: int, total: int, cap_s: float, operation: Operation) -> LoadOutcome:
    """`concurrency` workers issue requests back to back until `total` were started or `cap_s` passed."""
    outcome = LoadOutcome(concurrency, total)
    issued = 0
    start = time.monotonic()
    deadline = start + cap_s

    async def worker(index: int) -> None:
        nonlocal issued
        while issued < total:
            if time.monotonic() >= deadline:
                outcome.capped = True
                return
            request = issued
            issued += 1
            began = time.perf_counter()
            try:
                await operation(index, request)
            except (GraphQLFailure, httpx.HTTPError, KeyError, TypeError, AssertionError) as exc:
                outcome.errors += 1
                if len(outcome.error_samples) < 5:
                    outcome.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                outcome.latencies_ms.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    outcome.elapsed_s = time.monotonic() - start
    return outcome
