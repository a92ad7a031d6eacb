"""Every manifest the chart renders, with each option off and on, is valid against the Kubernetes API's
schemas and the custom resources' CRD schemas: strictly (an unknown field fails, as
`kubectl apply --validate=strict` would refuse it; the API server would otherwise drop it silently).

Offline: PyPI's kubernetes-validate ships the API's JSON schemas (its strict ones, read here from the
package with a cache of their shared definitions; checked at the chart's oldest supported Kubernetes and
at the one `helm template` renders for); the CRDs' come from the operators' own manifests, converted by
tests/deploy/crd_schemas.py (scripts/install-crd-schemas).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing

from tests.deploy.chart import CHART, REPO, Manifest, helm, render

pytestmark = pytest.mark.deploy

# The chart's oldest supported Kubernetes (Chart.yaml kubeVersion: ">=1.27.0-0") and the one helm
# renders for (scripts/install-helm: client-go's minor + 1).
OLDEST = re.search(r"kubeVersion:\s*\">=(\d+\.\d+)", (CHART / "Chart.yaml").read_text())
KUBERNETES_VERSIONS = (OLDEST.group(1) if OLDEST else "unknown", "1.37")
CRD_GROUPS = ("postgresql.cnpg.io", "monitoring.coreos.com", "security.istio.io", "networking.istio.io")

ALL_ON = (
    *("--set", "mesh.istio.enabled=true"),
    *("--set-json", 'mesh.istio.scraperPrincipals=["cluster.local/ns/monitoring/sa/prometheus"]'),
    *("--set", "networkPolicy.enabled=true"),
    *("--set-json", 'networkPolicy.scrapers=[{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]'),
    *("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"),
    *("--set", "metrics.dashboards.enabled=true"),
    *("--set", "postgresql.cloudnativepg.enabled=true"),
    *("--set", "turn.enabled=true", "--set", "turn.realm=chat.example.test"),
    *("--set", "turn.urls={turn:turn.example.test:3478}", "--set", "turn.externalIP=203.0.113.7"),
    *("--set", "router.autoscaling.enabled=true"),
    *(
        arg
        for name in ("users", "servers", "messages", "friends", "webhooks")
        for arg in ("--set", f"subgraphs.{name}.autoscaling.enabled=true")
    ),
    *("--set", "subgraphs.channels.replicas=3", "--set", "worker.replicas=2"),
    *("--set", "voice.announcedAddress=203.0.113.50", "--set", "voice.hostAddresses={10.0.0.5}"),
    *("--set", "media.s3.accessKeyIdKey=s3-id", "--set", "media.s3.secretAccessKeyKey=s3-secret"),
    *("--set", "media.s3.endpointUrl=https://s3.example.test", "--set", "media.publicUrl=https://x.test/m"),
    *("--set", "router.corsOrigins=https://app.example.test", "--set", "router.publicUrl=https://x.test"),
    *("--set", "serviceAccount.annotations.team=chat", "--set", "podLabels.team=chat"),
    *("--set", "backup.enabled=true", "--set", "backup.s3.endpointUrl=https://backups.example.test"),
    *("--set", "backup.s3.accessKeyIdKey=b-id", "--set", "backup.s3.secretAccessKeyKey=b-secret"),
)
ALL_OFF = (
    *("--set", "podDisruptionBudget.enabled=false", "--set", "topologySpread.enabled=false"),
    *("--set", "serviceAccount.create=false", "--set", "migrations.enabled=false"),
    *("--set", "auth.issuer=https://sso.example.test/realms/beep"),
    *("--set", "search.backend=solr", "--set", "search.solrUrl=http://solr:8983/solr"),
)
VALUE_SETS = {
    "defaults": (),
    "everything-on": ALL_ON,
    "everything-off": ALL_OFF,
    "nine-nodes": ("-f", str(CHART / "values-nine-nodes.yaml")),
}


@cache
def crd_schema_dir() -> Path:
    script = REPO / "scripts" / "install-crd-schemas"
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/install-crd-schemas failed:\n{result.stderr}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


@cache
def crd_validator(file_name: str) -> jsonschema.Draft202012Validator | None:
    path = crd_schema_dir() / file_name
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=None)


@cache
def api_definitions(version: str) -> tuple[str, referencing.Registry]:
    """kubernetes-validate's strict schemas of one Kubernetes version: their folder and a registry of
    the shared definitions they refer to (loaded once: the library itself reads them at every call)."""
    folder = f"v{version}.0-local-strict"
    files = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / folder
    definitions = json.loads((files / "_definitions.json").read_text())
    resource = referencing.Resource.from_contents(definitions)
    return definitions["$id"], referencing.Registry().with_resource(definitions["$id"], resource)


@cache
def api_validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """The API's schema of `kind` at `version`, named as kubernetes-validate names it (group without
    its domain: policy/v1 -> policy-v1, autoscaling/v2 -> autoscaling-v2, v1 -> v1)."""
    files = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = files / f"v{version}.0-local-strict" / f"{kind.lower()}-{api}.json"
    if not path.is_file():
        return None
    _, registry = api_definitions(version)
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=registry)


@cache
def object_meta_validator() -> jsonschema.Draft202012Validator:
    """The API's ObjectMeta: a custom resource's metadata."""
    base, registry = api_definitions(KUBERNETES_VERSIONS[-1])
    ref = f"{base}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)


def problems(manifest: Manifest) -> list[str]:
    """Why `manifest` is invalid (empty: it is valid) at every Kubernetes version checked."""
    kind, api_version = manifest["kind"], manifest["apiVersion"]
    where = f"{kind}/{manifest['metadata']['name']}"
    group = api_version.rpartition("/")[0]
    if group in CRD_GROUPS:
        group, _, version = api_version.rpartition("/")
        validator = crd_validator(f"{kind.lower()}-{group}-{version}.json")
        if validator is None:
            return [f"{where}: no CRD schema for {api_version} {kind}"]
        meta = object_meta_validator().iter_errors(manifest["metadata"])
        errors = [*validator.iter_errors(manifest), *meta]
        return [f"{where}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    found = []
    for version in KUBERNETES_VERSIONS:
        validator = api_validator(version, api_version, kind)
        if validator is None:
            found.append(f"{where}: Kubernetes {version} has no {api_version} {kind}")
            continue
        found += [
            f"{where} (Kubernetes {version}): {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(manifest)
        ]
    return found


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_every_rendered_manifest_is_valid_against_the_api_and_crd_schemas(values: tuple[str, ...]) -> None:
    manifests = render(*values)
    found = [p for m in manifests for p in problems(m)]
    assert not found, "\n".join(found)


def test_each_option_on_renders_the_resources_it_promises() -> None:
    """The value sets above exercise every kind the chart can render (so each kind's schema is checked)."""
    kinds = {m["kind"] for values in VALUE_SETS.values() for m in render(*values)}
    assert kinds >= {
        "Deployment", "StatefulSet", "Service", "ConfigMap", "Job", "ServiceAccount",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Cluster",
        "ServiceMonitor", "PodMonitor", "PrometheusRule",
        "PeerAuthentication", "AuthorizationPolicy", "DestinationRule",
    }  # fmt: skip


def plant(manifests: list[Manifest], kind: str, path: tuple[str | int, ...], value: Any) -> Manifest:
    manifest = copy.deepcopy(next(m for m in manifests if m["kind"] == kind))
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value  # type: ignore[index]
    return manifest


PLANTED = {
    # kind, path to the planted field, value: each a typo or a wrong type the API server would drop or refuse
    "container-probe-typo": (
        "Deployment",
        ("spec", "template", "spec", "containers", 0, "livenessProbe", "httpGet", "paht"),
        "/healthz",
    ),
    "hpa-wrong-type": ("HorizontalPodAutoscaler", ("spec", "minReplicas"), "two"),
    "pdb-unknown-field": ("PodDisruptionBudget", ("spec", "maxUnavaliable"), 1),
    "cnpg-typo": ("Cluster", ("spec", "postgresql", "synchronous", "dataDurabilty"), "required"),
    "cnpg-bad-enum": ("Cluster", ("spec", "postgresql", "synchronous", "method"), "all"),
    "servicemonitor-typo": ("ServiceMonitor", ("spec", "endpoints", 0, "intervall"), "30s"),
    "destinationrule-typo": (
        "DestinationRule",
        ("spec", "trafficPolicy", "connectionPool", "tcp", "maxConnection"),
        5,
    ),
    "authorizationpolicy-bad-action": ("AuthorizationPolicy", ("spec", "action"), "PERMIT"),
    "peerauthentication-bad-mode": ("PeerAuthentication", ("spec", "mtls", "mode"), "STRICTEST"),
    "custom-resource-metadata-typo": ("DestinationRule", ("metadata", "lables"), {"a": "b"}),
    "configmap-wrong-type": ("ConfigMap", ("data", "BEEP_MODE"), 3),
    "prometheusrule-typo": ("PrometheusRule", ("spec", "groups", 0, "rulez"), []),
}


@pytest.fixture(scope="module")
def all_on() -> list[Manifest]:
    return render(*ALL_ON)


@pytest.mark.parametrize("planted", list(PLANTED.values()), ids=list(PLANTED))
def test_a_planted_bad_field_fails_validation(
    all_on: list[Manifest], planted: tuple[str, tuple[str | int, ...], Any]
) -> None:
    manifests = all_on
    kind, path, value = planted
    original = next(m for m in manifests if m["kind"] == kind)
    assert not problems(original)
    found = problems(plant(manifests, kind, path, value))
    assert found, f"{kind} with {'.'.join(map(str, path))}={value!r} passed validation"
    assert str(path[-1]) in "\n".join(found) or repr(value).strip("'") in "\n".join(found), found


def test_a_bad_field_passed_through_values_is_caught() -> None:
    """Raw maps in values.yaml (traffic policies, autoscaler behaviour) reach the manifests as they are:
    `helm template` accepts a typo in them, the schema check does not."""
    typo = "mesh.istio.subgraphTrafficPolicy.outlierDetection.interva=5s"
    manifests = render("--set", "mesh.istio.enabled=true", "--set", typo)
    found = [p for m in manifests for p in problems(m)]
    assert found and all("interva" in p for p in found), found
    window = "autoscaling.behavior.scaleDown.window=1"
    behaviour = render("--set", "router.autoscaling.enabled=true", "--set", window)
    assert [p for m in behaviour for p in problems(m)]


def test_the_crd_schemas_come_from_the_operators_manifests() -> None:
    names = {p.name for p in crd_schema_dir().glob("*.json")}
    assert {
        "cluster-postgresql.cnpg.io-v1.json",
        "servicemonitor-monitoring.coreos.com-v1.json",
        "podmonitor-monitoring.coreos.com-v1.json",
        "prometheusrule-monitoring.coreos.com-v1.json",
        "peerauthentication-security.istio.io-v1.json",
        "authorizationpolicy-security.istio.io-v1.json",
        "destinationrule-networking.istio.io-v1.json",
    } <= names
    lint = helm("lint", "--strict", str(CHART), "-f", str(CHART / "values-nine-nodes.yaml"))
    assert lint.returncode == 0, lint.stdout + lint.stderr
