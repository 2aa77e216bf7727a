"""A real Prometheus (Debian's ``prometheus``) scrapes the running components of a pipeline.

It loads the shipped alerting rules (deploy/prometheus), every target must be ``up == 1`` with
``feedback_*`` series, every Grafana dashboard expression must evaluate, and each component answers
``/healthz`` and ``/readyz``. ``promtool`` checks the shipped configuration and rules and runs the
shipped rule unit tests.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipeline.broker import free_port
from tests.conftest import require
from tests.integration.harness import Pipeline, wait_for
from tests.unit.test_deploy_dashboard import promql

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
JOBS = {"http": "feedback-http", "processor": "feedback-processor", "sink": "feedback-sink-warehouse"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} (Debian package prometheus)")
    return str(path)


def shipped_rule_files() -> list[Path]:
    """The rule files deploy/prometheus/prometheus.yml loads (its globs, relative to it)."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    files: list[Path] = []
    for pattern in config.get("rule_files", []):
        files += [Path(p) for p in sorted(glob.glob(str(PROM_DIR / pattern)))]
    return files


def rule_test_files() -> list[Path]:
    """promtool rule unit tests shipped beside the rules (any YAML with rule_files + tests)."""
    found = []
    for path in sorted(PROM_DIR.rglob("*.y*ml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "tests" in doc and "rule_files" in doc:
            found.append(path)
    return found


def test_promtool_checks_the_shipped_config_and_rules() -> None:
    promtool = _tool("promtool")
    result = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=PROM_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = shipped_rule_files()
    if rules:  # the alert rules (issue 6) are loaded by the config above, so checked there too
        result = subprocess.run([promtool, "check", "rules", *map(str, rules)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_runs_the_shipped_rule_unit_tests() -> None:
    promtool = _tool("promtool")
    tests = rule_test_files()
    if not tests:
        pytest.skip("no promtool rule unit tests shipped in deploy/prometheus yet")
    for path in tests:
        result = subprocess.run([promtool, "test", "rules", path.name], cwd=path.parent, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{path}: {result.stdout}{result.stderr}"


@pytest.fixture
def prometheus(pipeline: Pipeline, tmp_path: Path) -> Iterator[str]:
    binary = _tool("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in shipped_rule_files()],
        "scrape_configs": [
            {"job_name": JOBS[name], "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for name, port in pipeline.ports.items() if name in JOBS
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 60, what="prometheus ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_prometheus_scrapes_every_component_and_the_dashboard_queries_evaluate(
        pipeline: Pipeline, prometheus: str) -> None:
    for name in JOBS:  # liveness and readiness of each component, as the orchestrator probes them
        port = pipeline.ports[name]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200, name
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200, name

    ref = f"prom-{uuid.uuid4()}"
    r = httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": ref, "text": "Prometheus sees this"}, timeout=30)
    assert r.status_code == 202, r.text
    wait_for(lambda: pipeline.count(f"source_ref = '{ref}'") == 1, 90, what="row written")

    def all_up() -> bool:
        up = {s["metric"]["job"]: s["value"][1] for s in _query(prometheus, 'up{job=~"feedback-.*"}')}
        return up == {job: "1" for job in JOBS.values()}

    wait_for(all_up, 60, interval=0.5, what="every target up == 1")
    wait_for(lambda: _query(prometheus, 'feedback_written_total{job="feedback-sink-warehouse"} > 0'), 30,
             interval=0.5, what="feedback_written_total scraped from the sink")
    by_source = wait_for(lambda: _query(prometheus, "sum by (source) (feedback_accepted_total)"), 30, interval=0.5,
                         what="feedback_accepted_total scraped from the HTTP service")
    assert "event" in {s["metric"].get("source") for s in by_source}
    assert _query(prometheus, 'feedback_processed_total{job="feedback-processor"}')

    for title, expr in promql():  # every dashboard panel's expression runs on a real Prometheus
        _query(prometheus, expr)
        assert title

    if shipped_rule_files():  # the shipped alerting rules load and evaluate without errors
        def rules_evaluated() -> list[dict[str, Any]]:
            groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else []

        rules = wait_for(rules_evaluated, 30, interval=0.5, what="rules evaluated")
        bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
        assert not bad, bad
