"""deploy/prometheus: the alerting rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``), the scrape config and the Alertmanager example are valid, and every
pipeline metric a rule uses exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import pipeline.metrics  # noqa: F401 - registers every feedback_* metric
import sinks.alerts.dispatch  # noqa: F401 - registers the alert sink's own (feedback_open_incidents)
from tests.conftest import require

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=DEPLOY, capture_output=True, text=True, timeout=120)


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    checked = run("promtool", "check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout  # FeedbackIncidentOpen is the tenth
    tested = run("promtool", "test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    config = run("promtool", "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_alertmanager_example_is_valid() -> None:
    require(shutil.which("amtool") is not None, "amtool (Debian package prometheus-alertmanager)")
    checked = run("amtool", "check-config", "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 receivers" in checked.stdout


def test_every_metric_a_rule_uses_is_exported_by_the_pipeline() -> None:
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count"}
    text = (DEPLOY / "rules.yml").read_text()
    used = set(re.findall(r"\bfeedback_[a-z_]+\b", text)) - {"feedback_pipeline"}
    assert {"feedback_alert_active", "feedback_accepted_total", "feedback_dead_lettered_total",
            "feedback_alert_outbox_pending", "feedback_consumer_lag", "feedback_open_incidents"} <= used
    assert used <= names, used - names
