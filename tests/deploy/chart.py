"""Rendering the Helm chart and reading its manifests, for the chart's tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


CHART = REPO / "helm" / "beep"


HELM = REPO / ".cache" / "bin" / "helm"


RELEASE = "beep"


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
