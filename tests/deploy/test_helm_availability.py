"""The chart keeps Beep up through node loss, drains and load: autoscalers where scaling is safe, a
disruption budget and topology spread per component, and (with Istio) authorization and circuit
breaking that match the network policies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import (
    CHART,
    RELEASE,
    SUBGRAPHS,
    Manifest,
    helm,
    of_kind,
    render,
    workloads,
)

pytestmark = pytest.mark.deploy

STATELESS = ("users", "servers", "messages", "friends", "webhooks")  # not channels: the call hosts


@pytest.fixture(scope="module")
def default_manifests() -> list[Manifest]:
    return render()


def selects(selector: dict[str, str], workload: Manifest) -> bool:
    return selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


def hpa_targets(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in of_kind(manifests, "HorizontalPodAutoscaler").values()
    }


def test_each_stateless_subgraph_and_the_router_may_autoscale_and_then_pins_no_replica_count() -> None:
    args = ["--set", "router.autoscaling.enabled=true"]
    for name in STATELESS:
        args += ["--set", f"subgraphs.{name}.autoscaling.enabled=true"]
    args += ["--set", "subgraphs.messages.autoscaling.maxReplicas=9"]
    manifests = render(*args)
    targets = hpa_targets(manifests)
    assert set(targets) == {f"{RELEASE}-{n}" for n in (*STATELESS, "router")}
    for name, spec in targets.items():
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert "replicas" not in workloads(manifests)[name]["spec"], f"{name} pins a count its HPA owns"
        assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
        # Slow scale-down: a removed pod drops its sockets.
        assert spec["behavior"]["scaleDown"]["policies"] == [
            {"type": "Pods", "value": 1, "periodSeconds": 120}
        ]
    assert (targets[f"{RELEASE}-messages"]["minReplicas"], targets[f"{RELEASE}-messages"]["maxReplicas"]) == (
        2,
        9,
    )
    assert targets[f"{RELEASE}-users"]["maxReplicas"] == 6  # the top-level default
    assert targets[f"{RELEASE}-router"]["maxReplicas"] == 10  # router.autoscaling's own
    # The others keep their count.
    assert workloads(manifests)[f"{RELEASE}-channels"]["spec"]["replicas"] == 1
    assert workloads(manifests)[f"{RELEASE}-worker"]["spec"]["replicas"] == 1
    assert not hpa_targets(render())


def test_the_call_hosts_cannot_autoscale_and_bounds_are_checked() -> None:
    refused = helm("template", RELEASE, str(CHART), "--set", "subgraphs.channels.autoscaling.enabled=true")
    assert refused.returncode != 0 and "call hosts cannot autoscale" in refused.stderr, refused.stderr
    # A global `enabled` does not switch every component on (the component's own value decides).
    assert not hpa_targets(render("--set", "autoscaling.enabled=true"))
    users = "subgraphs.users.autoscaling"
    bounds = ("--set", f"{users}.minReplicas=5", "--set", f"{users}.maxReplicas=3")
    inverted = helm("template", RELEASE, str(CHART), "--set", f"{users}.enabled=true", *bounds)
    assert inverted.returncode != 0 and "minReplicas <= maxReplicas" in inverted.stderr


def test_every_component_has_a_disruption_budget_selecting_exactly_its_pods() -> None:
    manifests = render("--set", "turn.enabled=true", "--set", "turn.realm=x", "--set", "turn.urls={turn:x}")
    budgets = of_kind(manifests, "PodDisruptionBudget")
    components = workloads(manifests)
    assert (
        set(budgets)
        == set(components)
        == {f"{RELEASE}-{n}" for n in (*SUBGRAPHS, "router", "worker", "turn")}
    )
    for name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert [w for w, workload in components.items() if selects(selector, workload)] == [name]
        # Never blocks a drain, even at one replica; a crash-looping pod may always be evicted.
        assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert not of_kind(render("--set", "podDisruptionBudget.enabled=false"), "PodDisruptionBudget")


def test_every_component_spreads_its_own_pods_over_nodes(default_manifests: list[Manifest]) -> None:
    for name, workload in workloads(default_manifests).items():
        (constraint,) = workload["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert constraint["topologyKey"] == "kubernetes.io/hostname" and constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        selected = [
            w
            for w, other in workloads(default_manifests).items()
            if selects(constraint["labelSelector"]["matchLabels"], other)
        ]
        assert selected == [name]
    zones = (
        '[{"topologyKey": "kubernetes.io/hostname"},'
        ' {"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]'
    )
    spread = render("--set-json", f"topologySpread.constraints={zones}")
    router = workloads(spread)[f"{RELEASE}-router"]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in router] == [
        ("kubernetes.io/hostname", "ScheduleAnyway"),
        ("topology.kubernetes.io/zone", "DoNotSchedule"),
    ]
    off = render("--set", "topologySpread.enabled=false")
    assert not any(
        "topologySpreadConstraints" in w["spec"]["template"]["spec"] for w in workloads(off).values()
    )


def test_beeps_pods_run_as_their_own_service_account_without_its_token(
    default_manifests: list[Manifest],
) -> None:
    (account,) = of_kind(default_manifests, "ServiceAccount").values()
    assert account["metadata"]["name"] == RELEASE and account["automountServiceAccountToken"] is False
    with_turn = render("--set", "turn.enabled=true", "--set", "turn.realm=x", "--set", "turn.urls={turn:x}")
    assert f"{RELEASE}-turn" in workloads(with_turn)
    for name, workload in workloads(with_turn).items():
        spec = workload["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == RELEASE, name
        assert spec["automountServiceAccountToken"] is False, name
    # The migration job, a pre-install hook, runs before the account exists.
    (job,) = of_kind(default_manifests, "Job").values()
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


# ---------------------------------------------------------------------------------------------
# Istio


@pytest.fixture(scope="module")
def meshed() -> list[Manifest]:
    principals = '["cluster.local/ns/monitoring/sa/prometheus"]'
    return render(
        "--set", "mesh.istio.enabled=true", "--set-json", f"mesh.istio.scraperPrincipals={principals}",
        "--set", "networkPolicy.enabled=true", "--namespace", "chat",
    )  # fmt: skip


def test_each_subgraph_admits_only_beeps_own_identity_and_scrapers_on_metrics(meshed: list[Manifest]) -> None:
    """The AuthorizationPolicies say what the NetworkPolicies say: a subgraph's port is for this release's
    pods (their ServiceAccount's identity), plus scrapers on GET /metrics; the router stays open."""
    policies = of_kind(meshed, "AuthorizationPolicy")
    network = of_kind(meshed, "NetworkPolicy")
    assert set(policies) == set(network) == {f"{RELEASE}-{n}" for n in SUBGRAPHS}
    components = workloads(meshed)
    own = f"cluster.local/ns/chat/sa/{RELEASE}"
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["action"] == "ALLOW"
        assert [
            w for w, workload in components.items() if selects(spec["selector"]["matchLabels"], workload)
        ] == [name]
        port = str(network[name]["spec"]["ingress"][0]["ports"][0]["port"])
        beep, scrapers = spec["rules"]
        assert beep == {"from": [{"source": {"principals": [own]}}], "to": [{"operation": {"ports": [port]}}]}
        assert scrapers["from"] == [{"source": {"principals": ["cluster.local/ns/monitoring/sa/prometheus"]}}]
        assert scrapers["to"] == [{"operation": {"ports": [port], "methods": ["GET"], "paths": ["/metrics"]}}]
    # Every pod that calls a subgraph carries that identity.
    callers = {n: w["spec"]["template"]["spec"]["serviceAccountName"] for n, w in components.items()}
    assert set(callers.values()) == {RELEASE}
    assert RELEASE in of_kind(meshed, "ServiceAccount")


def test_the_router_and_each_subgraph_get_circuit_breaking(meshed: list[Manifest]) -> None:
    rules = of_kind(meshed, "DestinationRule")
    assert set(rules) == {f"{RELEASE}-{n}" for n in (*SUBGRAPHS, "router")}
    for name, rule in rules.items():
        assert rule["spec"]["host"] == f"{name}.chat.svc.cluster.local"
        policy = rule["spec"]["trafficPolicy"]
        assert policy["connectionPool"]["tcp"]["maxConnections"] > 0
        assert policy["connectionPool"]["http"]["http1MaxPendingRequests"] > 0
        # Outlier detection never ejects every pod of a service.
        assert 0 < policy["outlierDetection"]["maxEjectionPercent"] <= 50
    messages = rules[f"{RELEASE}-messages"]["spec"]["trafficPolicy"]
    assert messages["outlierDetection"]["consecutive5xxErrors"] == 5


def test_istio_needs_an_identity_for_beeps_pods() -> None:
    refused = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "mesh.istio.enabled=true",
        "--set",
        "serviceAccount.create=false",
    )
    assert refused.returncode != 0 and "identity of their own" in refused.stderr
    named = render(
        "--set",
        "mesh.istio.enabled=true",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=chat",
    )
    assert not of_kind(named, "ServiceAccount")
    policy = of_kind(named, "AuthorizationPolicy")[f"{RELEASE}-users"]
    assert policy["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/default/sa/chat"
    ]


def test_the_nine_node_example_renders_with_everything_it_documents() -> None:
    manifests = render("-f", str(CHART / "values-nine-nodes.yaml"), "--namespace", "beep")
    assert set(hpa_targets(manifests)) == {f"{RELEASE}-{n}" for n in (*STATELESS, "router")}
    assert workloads(manifests)[f"{RELEASE}-channels"]["spec"]["replicas"] == 3
    assert workloads(manifests)[f"{RELEASE}-worker"]["spec"]["replicas"] == 2
    for kind in ("Cluster", "PeerAuthentication", "AuthorizationPolicy", "DestinationRule", "NetworkPolicy"):
        assert of_kind(manifests, kind), kind
    # Requests at the autoscalers' minima fit beside the dependencies on 18 cores (the values file's budget).
    cpu = 0.0
    for name, workload in workloads(manifests).items():
        replicas = workload["spec"].get("replicas") or hpa_targets(manifests)[name]["minReplicas"]
        request = workload["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        cpu += replicas * (float(request[:-1]) / 1000 if request.endswith("m") else float(request))
    assert 4 <= cpu <= 6, cpu


def test_only_beep_its_replicas_and_the_operator_reach_the_charts_database() -> None:
    cnpg = ("--set", "postgresql.cloudnativepg.enabled=true")
    assert f"{RELEASE}-db" not in of_kind(render(*cnpg), "NetworkPolicy")  # policies not asked for
    scraper = '[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]'
    manifests = render(
        *cnpg, "--set", "networkPolicy.enabled=true", "--set-json", f"networkPolicy.scrapers={scraper}"
    )
    policy = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-db"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"cnpg.io/cluster": f"{RELEASE}-db"}}
    assert policy["policyTypes"] == ["Ingress"]
    beep, cluster, scrapers = policy["ingress"]
    own = {"app.kubernetes.io/name": "beep", "app.kubernetes.io/instance": RELEASE}
    assert beep == {
        "from": [{"podSelector": {"matchLabels": own}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    # Every pod that connects to PostgreSQL carries those labels (the migration job included).
    for name, workload in workloads(manifests).items():
        if name != f"{RELEASE}-router":
            assert own.items() <= workload["spec"]["template"]["metadata"]["labels"].items(), name
    job = of_kind(manifests, "Job")[f"{RELEASE}-db-migrate"]
    assert own.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    peers = cluster["from"]
    assert peers[0] == {"podSelector": {"matchLabels": {"cnpg.io/cluster": f"{RELEASE}-db"}}}  # replication
    assert peers[1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "cnpg-system"}
    assert {p["port"] for p in cluster["ports"]} == {5432, 8000}
    assert scrapers["ports"] == [{"protocol": "TCP", "port": 9187}]
