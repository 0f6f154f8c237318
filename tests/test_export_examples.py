"""The shipped examples: alert rules pass `promtool test rules`, the Grafana dashboard asks only
for metrics `vfleet export` writes (the Prometheus test also runs each of its queries)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need_backend
from vfleet.core.exposition import METRIC_NAMES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DASHBOARD = EXAMPLES / "grafana" / "vfleet-dashboard.json"
_KEYWORDS = {"by", "on", "without", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_GROUPING = re.compile(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)")


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (t["expr"] for t in panel.get("targets", []))
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard["panels"])
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            yield var["query"]["query"]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r"label_values\((.*),\s*\w+\s*\)", r"\1", expr)  # Grafana's: its last argument is a label
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", text)  # matchers, ranges, variables
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match[0] in _KEYWORDS:
            continue
        names.add(match[0])
    return names


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    if shutil.which("promtool") is None:
        need_backend("promtool (Debian package prometheus)", False)
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        run = subprocess.run(
            ["promtool", *argv], cwd=EXAMPLES / "prometheus", capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stdout + run.stderr
    rules = (EXAMPLES / "prometheus" / "alerts.yml").read_text()
    for alert in ("VfleetHostDown", "VfleetDomainCrashed", "VfleetDomainContentionHigh", "VfleetHostDataStale"):
        assert f"alert: {alert}" in rules
    for name in set(re.findall(r"vfleet_[a-z_]+", rules)):
        assert name in METRIC_NAMES, name


def test_dashboard_queries_only_metrics_the_exporter_writes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30 and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = list(dashboard_exprs(dashboard))
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= METRIC_NAMES, (expr, names - METRIC_NAMES)
        used |= names
    for family in (
        "vfleet_domain_cpu_ratio",
        "vfleet_domain_memory_used_bytes",
        "vfleet_domain_disk_read_bytes_per_second",
        "vfleet_domain_network_receive_bytes_per_second",
        "vfleet_domain_contention_ratio",
        "vfleet_host_up",
    ):
        assert family in used, family


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (host) (rate(vfleet_domain_cpu_seconds_total{host=~"$host"}[5m]))',
            {"vfleet_domain_cpu_seconds_total"},
        ),
        ("a / on(host, domain_key) group_left b or vector(0)", {"a", "b"}),
        ('label_values(vfleet_domain_info{host=~"$host"}, domain)', {"vfleet_domain_info"}),
    ],
)
def test_the_name_extractor_sees_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
