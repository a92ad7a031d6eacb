"""The chart's tracing values (docs/tracing.md): the OTLP endpoint and sampling ratio reach every process
that emits spans (the router, each subgraph, the worker), and nothing of it when no endpoint is set."""

from __future__ import annotations

import pytest

from tests.deploy.chart import Manifest, env_of, helm, of_kind, render, workloads

pytestmark = pytest.mark.deploy

TRACED = ["--set", "tracing.otlpEndpoint=http://tempo.monitoring:4318", "--set", "tracing.samplingRatio=0.25"]


def settings_of(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    """Each workload's BEEP_* settings as its container sees them: its ConfigMaps', then its own env."""
    config_maps = of_kind(manifests, "ConfigMap")
    found = {}
    for name, workload in workloads(manifests).items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            seen: dict[str, str] = {}
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    seen |= config_maps[source["configMapRef"]["name"]].get("data") or {}
            seen |= {k: e["value"] for k, e in env_of(container).items() if "value" in e}
            found[f"{name}/{container['name']}"] = seen
    return found


def test_every_process_gets_the_otlp_endpoint_and_sampling_ratio() -> None:
    found = settings_of(render(*TRACED))
    traced = [name for name in found if name.startswith(("beep-router", "beep-worker", "beep-messages"))]
    assert {"beep-router", "beep-worker", "beep-messages"} <= {n.split("/")[0] for n in traced}, found.keys()
    for name, settings in found.items():
        if name.split("/")[0].startswith("beep-turn"):
            continue  # coturn: not Beep's code
        assert settings.get("BEEP_OTEL_EXPORTER") == "otlp", name
        assert settings.get("BEEP_OTEL_ENDPOINT") == "http://tempo.monitoring:4318", name
        assert settings.get("BEEP_OTEL_SAMPLING_RATIO") == "0.25", name


def test_tracing_is_off_unless_an_endpoint_is_set() -> None:
    for name, settings in settings_of(render()).items():
        assert not any(k.startswith("BEEP_OTEL_") for k in settings), (name, settings)


def test_a_sampling_ratio_outside_zero_to_one_is_refused() -> None:
    result = helm(
        "template",
        "beep",
        "helm/beep",
        "--set",
        "tracing.otlpEndpoint=http://t:4318",
        "--set",
        "tracing.samplingRatio=1.5",
    )
    assert result.returncode != 0 and "tracing.samplingRatio" in result.stderr, result.stderr
