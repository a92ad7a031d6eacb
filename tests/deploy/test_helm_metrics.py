"""The chart's monitoring: every workload scraped once on a port it declares, the router's metrics on an
internal port no Service publishes, and alerts that name metrics Beep exports, each with a runbook."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    RELEASE,
    REPO,
    Manifest,
    env_of,
    exported_metric_names,
    helm,
    of_kind,
    only_container,
    promtool,
    render,
    workloads,
)

pytestmark = pytest.mark.deploy

MONITORING = ("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
RUNBOOKS = REPO / "docs" / "runbooks.md"
SERIES = 'namespace="default",app_kubernetes_io_instance="beep"'  # `helm template`'s namespace
RELEASE_LABELS = {"namespace": "default", "app_kubernetes_io_instance": "beep"}


@pytest.fixture(scope="module")
def monitored() -> list[Manifest]:
    return render(*MONITORING)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
    return True


def test_monitoring_resources_are_off_by_default_and_lint_when_on() -> None:
    defaults = render()
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert not of_kind(defaults, kind), f"{kind} rendered without its CRD being asked for"
    result = helm("lint", "--strict", str(CHART), *MONITORING)
    assert result.returncode == 0, f"helm lint failed:\n{result.stdout}\n{result.stderr}"


def test_every_workload_is_scraped_once_at_metrics_on_a_port_it_declares(monitored: list[Manifest]) -> None:
    services = of_kind(monitored, "Service")
    scraped: dict[str, list[str]] = {name: [] for name in workloads(monitored)}
    for name, workload in workloads(monitored).items():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        container_ports = {p["name"] for p in only_container(workload)["ports"]}
        for monitor_name, monitor in of_kind(monitored, "ServiceMonitor").items():
            spec = monitor["spec"]
            for service_name, service in services.items():
                if not selects(spec["selector"], service["metadata"]["labels"]):
                    continue
                if not service["spec"]["selector"].items() <= pod_labels.items():
                    continue
                for endpoint in spec["endpoints"]:
                    assert endpoint["path"] == "/metrics"
                    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
                    assert port["targetPort"] in container_ports, f"{service_name} -> {name}"
                    scraped[name].append(f"ServiceMonitor/{monitor_name} via {service_name}")
        for monitor_name, monitor in of_kind(monitored, "PodMonitor").items():
            spec = monitor["spec"]
            if not selects(spec["selector"], pod_labels):
                continue
            for endpoint in spec["podMetricsEndpoints"]:
                assert endpoint["path"] == "/metrics"
                assert endpoint["port"] in container_ports, f"PodMonitor/{monitor_name}: {name}"
                scraped[name].append(f"PodMonitor/{monitor_name}")
    for name, paths in scraped.items():
        assert len(paths) == 1, f"{name} is scraped {len(paths)} times: {paths}"
    # The rules select series by these pod labels.
    monitors = [*of_kind(monitored, "ServiceMonitor").values(), *of_kind(monitored, "PodMonitor").values()]
    for monitor in monitors:
        assert set(monitor["spec"]["podTargetLabels"]) == {
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }
    # One ServiceMonitor per subgraph; the router and the worker by their pods.
    assert set(of_kind(monitored, "PodMonitor")) == {f"{RELEASE}-router", f"{RELEASE}-worker"}


def test_the_routers_metrics_are_on_an_internal_port_no_service_publishes(monitored: list[Manifest]) -> None:
    router = only_container(workloads(monitored)[f"{RELEASE}-router"])
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    env = env_of(router)
    assert env["BEEP_ROUTER_METRICS_PORT"]["value"] == str(ports["metrics"])
    assert ports["metrics"] != ports["http"]
    assert env["BEEP_ROUTER_METRICS_HOST"]["value"] == "0.0.0.0"  # the pod's address, for the scraper
    for name, service in of_kind(monitored, "Service").items():
        for port in service["spec"]["ports"]:
            assert port["targetPort"] not in ("metrics", ports["metrics"]), f"Service {name} publishes it"


def alerts(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    (rule,) = of_kind(manifests, "PrometheusRule").values()
    found = {}
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            if "alert" in item:
                found[item["alert"]] = item
    return found


def test_each_alert_has_a_severity_a_runbook_section_and_names_exported_metrics(
    monitored: list[Manifest],
) -> None:
    (rule,) = of_kind(monitored, "PrometheusRule").values()
    headings = set(re.findall(r"^### (\w+)$", RUNBOOKS.read_text(), re.M))
    exported = exported_metric_names()
    assert {"beep_graphql_requests_total", "beep_router_graphql_requests_total"} <= exported
    recorded = set()
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            expr = item["expr"]
            assert f'app_kubernetes_io_instance="{RELEASE}"' in expr, item
            used = set(re.findall(r"\b(beep_[a-z0-9_]+)", expr))
            for name in used:
                family = re.sub(r"_(bucket|count|sum)$", "", name)
                rule_name = item.get("alert") or item.get("record")
                assert family in exported, f"{rule_name}: {name} is not exported"
            if "record" in item:
                recorded.add(item["record"])
                continue
            alert = item["alert"]
            assert item["labels"]["severity"] in ("warning", "critical"), alert
            assert alert in headings, f"{alert} has no section in docs/runbooks.md"
            assert item["annotations"]["runbook_url"].endswith(f"docs/runbooks.md#{alert.lower()}")
            assert item["annotations"]["summary"] and item["annotations"]["description"]
            for name in re.findall(r"\b(beep:[a-z0-9_:]+)", expr):
                assert name in recorded, f"{alert} uses {name}, which is recorded after it (or never)"
    names = set(alerts(monitored))
    assert {
        "BeepAvailabilityBudgetFastBurn",
        "BeepAvailabilityBudgetSlowBurn",
        "BeepSubgraphErrorRate",
        "BeepOutboxRelayLagging",
        "BeepOutboxConsumerLagging",
        "BeepDatabasePoolExhausted",
        "BeepProcessRestarting",
        "BeepTargetDown",
    } <= names
    assert names <= headings  # no alert without a runbook; checked above one by one too


def test_the_burn_rate_thresholds_follow_the_availability_objective(tmp_path: Path) -> None:
    def thresholds(manifests: list[Manifest]) -> tuple[list[float], list[float]]:
        found = alerts(manifests)

        def of(alert: str) -> list[float]:
            return [float(v) for v in re.findall(r">\s*([0-9.]+)", found[alert]["expr"])]

        return of("BeepAvailabilityBudgetFastBurn"), of("BeepAvailabilityBudgetSlowBurn")

    fast, slow = thresholds(render(*MONITORING))
    assert fast == pytest.approx([14.4 * 0.01] * 2) and slow == pytest.approx([6 * 0.01] * 2)
    stricter = ("--set", "metrics.prometheusRule.availabilityObjective=0.999")
    fast, slow = thresholds(render(*MONITORING, *stricter))
    assert fast == pytest.approx([14.4 * 0.001] * 2) and slow == pytest.approx([6 * 0.001] * 2)


def rule_file(manifests: list[Manifest], directory: Path) -> Path:
    (rule,) = of_kind(manifests, "PrometheusRule").values()
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def test_the_alert_rules_pass_promtool_check(monitored: list[Manifest], tmp_path: Path) -> None:
    result = promtool("check", "rules", str(rule_file(monitored, tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr


def run_alert_tests(manifests: list[Manifest], directory: Path, cases: list[Any]) -> None:
    """`promtool test rules` over the rendered rules with these test cases."""
    tests = directory / "alerts_test.yaml"
    rules = str(rule_file(manifests, directory))
    tests.write_text(yaml.safe_dump({"rule_files": [rules], "tests": cases}, sort_keys=False))
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def expected(alert: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, Any]:
    """An alert as promtool reports it: the rule's annotations with these labels and this value."""
    annotations = {}
    for key, text in alert["annotations"].items():
        text = re.sub(r"\{\{ \$value[^}]*\}\}", value, text)
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        annotations[key] = text
    return {"exp_labels": labels | {"severity": alert["labels"]["severity"]}, "exp_annotations": annotations}


def test_the_alerts_fire_on_what_they_describe_and_not_on_healthy_numbers(
    monitored: list[Manifest], tmp_path: Path
) -> None:
    by_name, release = alerts(monitored), RELEASE_LABELS
    router = f'beep_router_graphql_requests_total{{{SERIES},operation_type="query"'
    down = {"app_kubernetes_io_component": "messages", "pod": "beep-messages-1"}
    cases = [
        {  # 20% of operations fail for 90 minutes: the fast burn (14.4 x 1%) pages
            "interval": "1m",
            "input_series": [
                {"series": router + ',outcome="ok"}', "values": "0+80x90"},
                {"series": router + ',outcome="server_error"}', "values": "0+20x90"},
            ],
            "alert_rule_test": [
                {
                    "eval_time": "80m",
                    "alertname": "BeepAvailabilityBudgetFastBurn",
                    "exp_alerts": [expected(by_name["BeepAvailabilityBudgetFastBurn"], release, "20%")],
                }
            ],
        },
        {  # 0.5% fail: within the 99% objective, nothing fires
            "interval": "1m",
            "input_series": [
                {"series": router + ',outcome="ok"}', "values": "0+995x400"},
                {"series": router + ',outcome="server_error"}', "values": "0+5x400"},
            ],
            "alert_rule_test": [
                {"eval_time": "390m", "alertname": name, "exp_alerts": []}
                for name in ("BeepAvailabilityBudgetFastBurn", "BeepAvailabilityBudgetSlowBurn")
            ],
        },
        {  # store 3's oldest unpublished event is 2 minutes old, for 10 minutes; store 4 is fine
            "interval": "1m",
            "input_series": [
                {
                    "series": f'beep_outbox_relay_lag_seconds{{{SERIES},store="3",pod="beep-worker-1"}}',
                    "values": "120x10",
                },
                {
                    "series": f'beep_outbox_relay_lag_seconds{{{SERIES},store="4",pod="beep-worker-1"}}',
                    "values": "0x10",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "BeepOutboxRelayLagging",
                    "exp_alerts": [
                        expected(by_name["BeepOutboxRelayLagging"], release | {"store": "3"}, "2m 0s")
                    ],
                }
            ],
        },
        {  # a messages pod down for 6 minutes
            "interval": "1m",
            "input_series": [
                {
                    "series": f'up{{{SERIES},app_kubernetes_io_component="messages",pod="beep-messages-1"}}',
                    "values": "0x6",
                },
                {
                    "series": f'up{{{SERIES},app_kubernetes_io_component="users",pod="beep-users-1"}}',
                    "values": "1x6",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "6m",
                    "alertname": "BeepTargetDown",
                    "exp_alerts": [expected(by_name["BeepTargetDown"], release | down, "0")],
                }
            ],
        },
    ]
    run_alert_tests(monitored, tmp_path, cases)


def test_the_error_lag_pool_and_restart_alerts_fire_on_what_they_describe(
    monitored: list[Manifest], tmp_path: Path
) -> None:
    by_name, release = alerts(monitored), RELEASE_LABELS
    pod = {"pod": "beep-messages-1"}
    requests = f'beep_graphql_requests_total{{{SERIES},subgraph="messages",operation_type="query"'
    pool = f'{{{SERIES},pod="beep-messages-1",database="physical-0"}}'

    def case(alert: str, at: str, series: list[tuple[str, str]], labels: dict[str, str], value: str) -> Any:
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": [expected(by_name[alert], labels, value)]}
            ],
        }

    cases = [
        case(  # 10% of the messages subgraph's operations fail
            "BeepSubgraphErrorRate",
            "25m",
            [(requests + ',outcome="ok"}', "0+90x30"), (requests + ',outcome="server_error"}', "0+10x30")],
            release | {"subgraph": "messages"},
            "10%",
        ),
        case(  # search indexing 1,000 s behind, for 20 minutes
            "BeepOutboxConsumerLagging",
            "20m",
            [(f'beep_outbox_consumer_lag_seconds{{{SERIES},consumer="search-index"}}', "1000x20")],
            release | {"consumer": "search-index"},
            "16m 40s",
        ),
        case(  # 19 of 20 connections in use
            "BeepDatabasePoolExhausted",
            "10m",
            [
                (f"beep_db_pool_connections_in_use{pool}", "19x10"),
                (f"beep_db_pool_max_connections{pool}", "20x10"),
            ],
            release | pod | {"database": "physical-0"},
            "95%",
        ),
        case(  # started four times in 20 minutes: three changes of its start time
            "BeepProcessRestarting",
            "20m",
            [(f'process_start_time_seconds{{{SERIES},pod="beep-messages-1"}}', "100x4 400x4 700x4 1000x6")],
            release | pod,
            "3",
        ),
    ]
    quiet = {  # healthy numbers: none of them fires
        "interval": "1m",
        "input_series": [
            {"series": requests + ',outcome="ok"}', "values": "0+100x30"},
            {"series": f"beep_db_pool_connections_in_use{pool}", "values": "5x30"},
            {"series": f"beep_db_pool_max_connections{pool}", "values": "20x30"},
            {"series": f'process_start_time_seconds{{{SERIES},pod="beep-messages-1"}}', "values": "100x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": name, "exp_alerts": []}
            for name in ("BeepSubgraphErrorRate", "BeepDatabasePoolExhausted", "BeepProcessRestarting")
        ],
    }
    run_alert_tests(monitored, tmp_path, [*cases, quiet])
