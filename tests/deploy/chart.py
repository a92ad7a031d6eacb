"""Rendering the Helm chart and reading its manifests, for the chart's tests."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


CHART = REPO / "helm" / "beep"


HELM = REPO / ".cache" / "bin" / "helm"


RELEASE = "beep"
SUBGRAPHS = ("users", "servers", "channels", "messages", "friends", "webhooks")


Manifest = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.is_file():
        pytest.fail(f"helm is not installed at {HELM}: run scripts/install-helm first", pytrace=False)
    return subprocess.run(
        [str(HELM), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def render(*args: str, release: str = RELEASE) -> list[Manifest]:
    result = helm("template", release, str(CHART), *args)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def workloads(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Deployments and StatefulSets (the channels pods, which host calls) by name."""
    return of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env") or []}


def only_container(deployment: Manifest) -> Manifest:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


PROMTOOL = REPO / ".cache" / "bin" / "promtool"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.is_file():
        pytest.fail(f"promtool is not installed at {PROMTOOL}: run scripts/install-promtool", pytrace=False)
    return subprocess.run(
        [str(PROMTOOL), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]


def exported_metric_names() -> set[str]:
    """Every beep_* family Beep's code defines (Python and the router)."""
    sources = [
        REPO / "subgraphs" / "kernel" / "metrics.py",
        REPO / "subgraphs" / "kernel" / "events" / "outbox_metrics.py",
        REPO / "subgraphs" / "kernel" / "pauses.py",  # beep_gc_pause_seconds, beep_event_loop_lag_seconds
        REPO / "db" / "engines.py",  # beep_db_pool_wait_seconds
        REPO / "subgraphs" / "kernel" / "tenancy" / "access_versions.py",  # beep_access_cache_*
        REPO / "media" / "voice" / "metrics.py",  # beep_voice_*
        REPO / "router" / "metrics.ts",
    ]
    names = set()
    for source in sources:
        names |= set(re.findall(r"[\"'](beep_[a-z0-9_]+)[\"']", source.read_text()))
    return names
