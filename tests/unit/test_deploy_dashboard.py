"""deploy/grafana: the dashboard uses the real metric names of pipeline/metrics.py, every PromQL
expression parses (``promtool check rules`` on the expressions as recording rules), the data sources
it names are provisioned, and it shows what operations asked for."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import pipeline.metrics  # noqa: F401 - registers every feedback_* metric
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "feedback-pipeline.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created"), "info": ("_info",)}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def promql() -> list[tuple[str, str]]:
    """(panel title, expression) of every Prometheus query, Grafana's interval variables resolved."""
    out = []
    for panel in panels():
        for target in panel["targets"]:
            if "expr" in target:
                out.append((panel["title"], target["expr"].replace("$__rate_interval", "5m")
                            .replace("$__interval", "1m")))
    return out


def sql() -> list[tuple[str, str]]:
    return [(p["title"], t["rawSql"]) for p in panels() for t in p["targets"] if "rawSql" in t]


def feedback_series_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("feedback_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def test_every_metric_the_dashboard_queries_exists_in_pipeline_metrics() -> None:
    known = feedback_series_names()
    assert "feedback_accepted_total" in known and "feedback_end_to_end_seconds_bucket" in known
    for title, expr in promql():
        used = set(re.findall(r"\b(feedback_[a-z0-9_]+)", expr))
        assert used or re.search(r'\bup\{job=~"feedback-', expr), f"{title}: queries no feedback_* metric"
        assert used <= known, f"{title}: {sorted(used - known)} are not metrics of pipeline/metrics.py"


def test_every_expression_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus)")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(promql())]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(promql())} rules found" in result.stdout


@pytest.mark.parametrize(("what", "pattern"), [
    ("ingestion by source", r"feedback_accepted_total.*by \(source\)|by \(source\).*feedback_accepted_total"),
    ("DLQ rate", r"rate\(feedback_dead_lettered_total"),
    ("processing latency", r"histogram_quantile\(0\.95, .*feedback_end_to_end_seconds_bucket"),
    ("sentiment by category", r'signal="mean_sentiment", scope_type="category"'),
    ("NPS by category", r'signal="nps", scope_type="category"'),
    ("open alerts", r"feedback_alert_active"),
])
def test_the_dashboard_shows_what_operations_asked_for(what: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for _, expr in promql()), f"no panel for {what}"


def test_warehouse_panels_cover_sentiment_nps_and_alerts() -> None:
    queries = " ".join(q for _, q in sql())
    assert "sentiment_polarity" in queries and "nps_class" in queries and "FROM alerts" in queries
    assert all("$__timeFilter(" in q or "FROM alerts" in q for _, q in sql())


def test_data_sources_are_provisioned_and_the_layout_has_no_overlap() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "feedback.yml").read_text())
    uids = {d["uid"] for d in provisioned["datasources"]}
    for panel in panels():
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == panel["datasource"]["uid"], panel["title"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "feedback.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    assert len({p["id"] for p in dashboard()["panels"]}) == len(dashboard()["panels"])
    assert dashboard()["uid"] == "feedback-pipeline"
