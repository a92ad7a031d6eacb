"""The chart's Grafana dashboards: shipped as ConfigMaps for Grafana's sidecar, and every PromQL expression
in them parses (promtool, over the expressions wrapped as recording rules) and names only metrics that a
Beep process exports: Beep's own (kernel/metrics.py, kernel/events/outbox_metrics.py, db/engines.py,
router/metrics.ts), the client libraries' default process metrics, and Prometheus' `up`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from tests.deploy.chart import CHART, RELEASE, REPO, exported_metric_names, of_kind, promtool, render

pytestmark = pytest.mark.deploy

DASHBOARDS = CHART / "dashboards"
ON = ("--set", "metrics.dashboards.enabled=true")
# Grafana's variables, as a query would run for release "beep" in namespace "default".
VARIABLES = {
    "$namespace": "default",
    "$release": RELEASE,
    "$__rate_interval": "2m",
    "$__interval": "30s",
    "$__range": "6h",
}
SELECTS_THE_RELEASE = 'namespace="$namespace",app_kubernetes_io_instance="$release"'
# Metric families every process has without Beep defining them, by who defines them.
LIBRARY_PREFIXES = ("process_", "python_", "nodejs_")
PROM_CLIENT_METRICS = REPO / "router" / "node_modules" / "prom-client" / "lib" / "metrics"
FUNCTIONS_AND_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def library_metric_names() -> set[str]:
    """prometheus_client's default collectors (the Python processes) and prom-client's (the router)."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    names = {sample.name for family in registry.collect() for sample in family.samples}
    names |= {family.name for family in registry.collect()}
    assert PROM_CLIENT_METRICS.is_dir(), "router/node_modules is missing: run scripts/bootstrap"
    for source in PROM_CLIENT_METRICS.glob("*.js"):
        names |= set(re.findall(r"['\"]((?:process|nodejs)_[a-z0-9_]+)['\"]", source.read_text()))
    return names


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable (label_values' selector)."""
    found = []

    def panels(items: list[dict[str, Any]]) -> Any:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]\w*)\)", query)
            assert match, f"variable {variable['name']}: {query}"
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def substituted(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers before a `{` selector, and any identifier that
    looks like a metric (Beep's or a library's prefix) wherever it stands."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    selected = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", without_strings))
    prefixed = set(re.findall(r"\b((?:beep|process|python|nodejs)_[a-z0-9_]+)\b", without_strings))
    return (selected | prefixed) - FUNCTIONS_AND_KEYWORDS


def unknown_metrics(expr: str, known: set[str]) -> set[str]:
    def family(name: str) -> str:
        return re.sub(r"_(bucket|count|sum)$", "", name)

    return {n for n in metric_names(expr) if n not in known and family(n) not in known}


def known_metrics() -> set[str]:
    return exported_metric_names() | library_metric_names() | {"up"}


def promtool_problems(named: list[tuple[str, str]], directory: Path) -> str:
    """promtool's complaints about the expressions (empty: they all parse)."""
    rules = [
        {"record": f"beep:dashboard:{i}", "expr": substituted(expr)} for i, (_, expr) in enumerate(named)
    ]
    path = directory / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = promtool("check", "rules", str(path))
    return "" if result.returncode == 0 else result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------


def test_the_four_dashboards_ship_as_configmaps_for_grafanas_sidecar_when_asked() -> None:
    assert not [n for n in of_kind(render(), "ConfigMap") if "dashboard" in n]
    maps = {n: m for n, m in of_kind(render(*ON), "ConfigMap").items() if "dashboard" in n}
    titles = {}
    for name, config_map in maps.items():
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1", name
        assert config_map["metadata"]["annotations"]["grafana_folder"] == "Beep", name
        ((file_name, text),) = config_map["data"].items()
        board = json.loads(text)
        assert board == dashboards()[file_name], f"{name} is not {file_name} as committed"
        titles[board["uid"]] = board["title"]
    assert set(titles) == {"beep-overview", "beep-realtime", "beep-message-path", "beep-voice"}
    relabelled = render(
        *ON, "--set", "metrics.dashboards.label=dashboards", "--set", "metrics.dashboards.folder="
    )
    for name, config_map in of_kind(relabelled, "ConfigMap").items():
        if "dashboard" in name:
            assert config_map["metadata"]["labels"]["dashboards"] == "1"
            assert "annotations" not in config_map["metadata"]


@pytest.mark.parametrize("file_name", sorted(dashboards()))
def test_every_expression_parses_and_names_only_metrics_beep_exports(file_name: str, tmp_path: Path) -> None:
    board = dashboards()[file_name]
    named = expressions(board)
    assert len(named) >= 8, "a dashboard with hardly any queries"
    known = known_metrics()
    for where, expr in named:
        assert metric_names(expr), f"{where}: selects no metric: {expr}"
        assert not unknown_metrics(expr, known), f"{where}: {unknown_metrics(expr, known)} not exported"
        leftover = re.findall(r"\$\w+", substituted(expr))
        assert not leftover, f"{where}: unknown Grafana variable {leftover}"
        if not where.startswith("variable "):
            # One release's series only: every selector names the namespace and the release.
            for selector in re.findall(r"\{([^}]*)\}", expr):
                assert SELECTS_THE_RELEASE in selector, f"{where}: {{{selector}}} selects other releases"
    assert not promtool_problems(named, tmp_path)


def test_the_checks_catch_a_misspelt_metric_and_a_broken_expression(tmp_path: Path) -> None:
    known = known_metrics()
    assert unknown_metrics('sum(rate(beep_graphql_request_total{a="b"}[5m]))', known) == {
        "beep_graphql_request_total"
    }
    assert unknown_metrics('rate(http_requests_total{a="b"}[5m])', known) == {"http_requests_total"}
    assert not unknown_metrics(
        'histogram_quantile(0.9, sum by (le) (rate(beep_db_pool_wait_seconds_bucket{a="b"}[5m])))', known
    )
    broken = [("broken", 'sum by (subgraph (rate(beep_graphql_requests_total{a="b"}[5m]))')]
    assert "parse error" in promtool_problems(broken, tmp_path).lower()


def test_the_dashboards_json_is_grafanas_shape() -> None:
    uids = set()
    for file_name, board in dashboards().items():
        assert board["uid"] == file_name.removesuffix(".json") and board["uid"] not in uids
        uids.add(board["uid"])
        assert board["schemaVersion"] >= 36 and "beep" in board["tags"]
        variables = [v["name"] for v in board["templating"]["list"]]
        assert variables == ["datasource", "namespace", "release"], file_name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{file_name}: duplicate panel ids"
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (file_name, panel["title"])
            if panel.get("targets"):
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboards_are_in_the_chart_package() -> None:
    """.helmignore must not leave the JSON out of a packaged chart."""
    ignore = CHART / ".helmignore"
    patterns = ignore.read_text().split() if ignore.is_file() else []
    assert not any(p in ("*.json", "dashboards/", "dashboards") for p in patterns)
