"""deploy/docker-compose.yml, checked by a real tool (Debian's ``docker-compose config``, no engine needed)
and against the code: each service's command exists in the CLI, each FEEDBACK_* variable it sets is
a setting of the class that command loads, and the values pass that class's validation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require
from tests.unit.test_deploy_cli import cli_command, env_names, known_env_names, settings_class, validate_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
REQUIRED_SECRETS = {"POSTGRES_PASSWORD": "pw-for-test",  # a customer-hash key as an operator makes one (32+ bytes)
                    "FEEDBACK_CUSTOMER_HASH_KEY": "3b9f0c6e1d8a47f25c0e9b7a1f4d2c6e8a0b3d5f7c9e1a2b4d6f8e0c2a4b6d8f",
                    "GRAFANA_ADMIN_PASSWORD": "admin-for-test", "FEEDBACK_API_TOKENS": "ingest:tok-for-test"}
#: Services whose scrape job deploy/prometheus/prometheus.yml (another owner's file) does not have yet.
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|WEBHOOK_URL")


def _compose_bin() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    require(False, "docker-compose (Debian package docker-compose)")
    raise AssertionError  # unreachable


def _env_file(tmp_path: Path, drop: str | None = None) -> Path:
    """.env.example with the required secrets filled in (as an operator would)."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in REQUIRED_SECRETS:
            if name == drop:
                continue
            line = f"{name}={REQUIRED_SECRETS[name]}"
        lines.append(line)
    path = tmp_path / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _compose(tmp_path: Path, *args: str, drop: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*_compose_bin(), "--env-file", str(_env_file(tmp_path, drop)), "-f", str(COMPOSE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=DEPLOY)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The configuration as docker-compose resolves it (interpolated, anchors merged, validated)."""
    result = _compose(tmp_path_factory.mktemp("compose"), "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]


def _pipeline_services(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in rendered["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


# -- the real tool --------------------------------------------------------------------------------
def test_docker_compose_accepts_the_file_and_lists_every_service(tmp_path: Path) -> None:
    result = _compose(tmp_path, "config", "--services")
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "prometheus", "alertmanager", "grafana", "migrate",
            "http", "processor", "sink-warehouse", "sink-alerts", "sink-followups", "connector-email"} <= services


@pytest.mark.parametrize("secret", sorted(REQUIRED_SECRETS))
def test_a_missing_secret_stops_compose_with_its_name(tmp_path: Path, secret: str) -> None:
    result = _compose(tmp_path, "config", drop=secret)
    assert result.returncode != 0
    assert secret in result.stderr


# -- topology -------------------------------------------------------------------------------------
def test_kafka_is_a_three_node_kraft_cluster_with_rf3_and_min_isr_2(rendered: dict[str, Any]) -> None:
    brokers = {n: s for n, s in rendered["services"].items() if s["image"].startswith("apache/kafka:")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    node_ids = set()
    for name, svc in brokers.items():
        env = svc["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert len(env["CLUSTER_ID"]) == 22
        assert any(v.endswith(":/var/lib/kafka/data:rw") for v in svc["volumes"]), "broker data not on a volume"
        assert "healthcheck" in svc and svc["restart"] == "unless-stopped"
        node_ids.add(env["KAFKA_NODE_ID"])
    assert node_ids == {"1", "2", "3"}
    for name, svc in _pipeline_services(rendered).items():
        env = svc["environment"]
        assert env["FEEDBACK_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092", name
        assert env["FEEDBACK_TOPIC_REPLICATION"] == "3", name


def test_pipeline_services_are_healthchecked_restarted_and_scalable(rendered: dict[str, Any]) -> None:
    services = _pipeline_services(rendered)
    assert services["http"]["deploy"]["replicas"] == 2
    assert services["processor"]["deploy"]["replicas"] >= 2
    assert services["connector-email"]["profiles"] == ["email"]
    for name, svc in services.items():
        assert "container_name" not in svc, f"{name}: a fixed container name prevents --scale"
        if name == "migrate":
            assert svc["restart"] == "on-failure" and svc["command"] == ["migrate"]
            continue
        assert svc["restart"] == "unless-stopped", name
        probe = " ".join(svc["healthcheck"]["test"])
        assert "/readyz" in probe, f"{name}: the health check must use /readyz"
        port = int(re.search(r"127\.0\.0\.1:(\d+)/readyz", probe).group(1))  # type: ignore[union-attr]
        env = svc["environment"]
        assert str(port) in {env.get(k) for k in env if k.endswith("_PORT")}, f"{name}: probe on a port not served"
        for fixed in svc.get("ports", []):
            assert name == "http" or "-" in str(fixed), f"{name}: a fixed host port prevents --scale"
    writers = ("sink-warehouse", "sink-alerts", "sink-followups", "connector-email")
    for name in writers:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name, svc in rendered["services"].items():
        assert svc.get("restart") in ("unless-stopped", "on-failure"), f"{name}: no restart policy"
        assert "healthcheck" in svc or name == "migrate", f"{name}: no health check"


def test_every_command_exists_and_every_variable_is_a_real_setting(rendered: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())  # declared keys, including pass-through (unset) ones
    services = _pipeline_services(rendered)
    assert len(services) >= 7
    for name, svc in services.items():
        cmd = cli_command(svc["command"])
        cls = settings_class(cmd)
        declared = {k for k in raw["services"][name]["environment"] if k.startswith("FEEDBACK_")}
        unknown = sorted(declared - env_names(cls))
        assert not unknown, f"service {name}: {unknown} are not settings of {cls.__name__}"
        values = {k: str(v) for k, v in svc["environment"].items() if k.startswith("FEEDBACK_") and v is not None}
        validate_env(cls, values, f"service {name}")


def test_no_secret_is_written_in_the_compose_file() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    blocks = [svc.get("environment", {}) for svc in raw["services"].values()]
    blocks += [v for k, v in raw.items() if k.startswith("x-") and isinstance(v, dict)]
    checked = 0
    for env in blocks:
        for key, value in env.items():
            if not SECRETISH.search(key) or key == "FEEDBACK_ALERT_LINK_URL":
                continue
            checked += 1
            literal = re.sub(r"\$\{[^}]*\}", "", "" if value is None else str(value))
            if "://" in literal:  # a URL: its password slot must be an interpolation
                assert not re.search(r"://[^/:@]+:[^@]+@", literal), f"{key}: a literal password in the URL"
            else:
                assert literal == "", f"{key} has a literal value in docker-compose.yml; take it from deploy/.env"
    assert checked >= 5
    url = raw["x-warehouse-env"]["FEEDBACK_WAREHOUSE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def test_env_example_documents_every_variable_and_only_real_settings() -> None:
    compose_vars = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    raw = yaml.safe_load(COMPOSE.read_text())
    for svc in raw["services"].values():
        compose_vars |= {k for k, v in (svc.get("environment") or {}).items() if v is None}
    example = {m.group(1) for m in re.finditer(r"^#? ?(\w+)=", ENV_EXAMPLE.read_text(), re.M)}
    assert compose_vars - example == set(), "variables the compose file reads but .env.example does not document"
    unknown = {v for v in example if v.startswith("FEEDBACK_")} - known_env_names()
    assert not unknown, f".env.example names variables no settings class reads: {sorted(unknown)}"
    for secret in REQUIRED_SECRETS:  # required secrets ship empty, so compose refuses to start
        assert re.search(rf"^{secret}=$", ENV_EXAMPLE.read_text(), re.M), secret
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_mounted_configuration_exists(rendered: dict[str, Any]) -> None:
    for name, svc in rendered["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
    assert (DEPLOY / "prometheus" / "prometheus.yml").is_file()
    assert (DEPLOY / "alertmanager" / "alertmanager.yml").is_file()
    assert (DEPLOY / "grafana" / "dashboards" / "feedback-pipeline.json").is_file()
    grafana_env = rendered["services"]["grafana"]["environment"]
    home = grafana_env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/var/lib/grafana/dashboards/feedback-pipeline.json"


def test_prometheus_scrapes_every_pipeline_service_on_its_metrics_port(rendered: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {(sd["names"][0], sd["port"]) for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= {(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in static["targets"]}
    for name, svc in _pipeline_services(rendered).items():
        if name == "migrate":
            continue
        env = svc["environment"]
        # the HTTP service's /metrics is on its internal port when one is set (the published port answers 404)
        port = int(env.get("FEEDBACK_HTTP_INTERNAL_PORT") or env.get("FEEDBACK_HTTP_PORT")
                   or next(v for k, v in env.items() if k.endswith("METRICS_PORT")))
        assert (name, port) in targets, f"Prometheus does not scrape {name}:{port}"
    assert any(t["targets"] == ["alertmanager:9093"]
               for am in config["alerting"]["alertmanagers"] for t in am["static_configs"])


def test_alertmanager_config_is_valid_and_routes_both_kinds_of_alert() -> None:
    amtool = shutil.which("amtool")
    require(amtool is not None, "amtool (Debian package prometheus-alertmanager)")
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([str(amtool), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    receivers = {r["name"] for r in config["receivers"]}
    assert {route["receiver"] for route in config["route"]["routes"]} <= receivers
    assert config["route"]["receiver"] in receivers


def test_alertmanager_routes_every_shipped_rule_to_its_team() -> None:
    """``amtool config routes test`` on each rule's static labels: signal alerts reach operations,
    pipeline-health alerts reach on-call (the rules are issue 6's deploy/prometheus/rules.yml)."""
    amtool = shutil.which("amtool")
    require(amtool is not None, "amtool (Debian package prometheus-alertmanager)")
    rules_file = DEPLOY / "prometheus" / "rules.yml"
    if not rules_file.exists():
        pytest.skip("no alerting rules shipped yet")
    expected = {"customer-experience": "cx-operations", "platform": "platform-oncall"}
    rules = [r for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert rules
    for rule in rules:
        labels = {k: v for k, v in rule.get("labels", {}).items() if "{{" not in str(v)}
        assert labels.get("team") in expected, f"{rule['alert']}: no team label the routes know"
        args = [f"{k}={v}" for k, v in {"alertname": rule["alert"], **labels}.items()]
        result = subprocess.run([str(amtool), "config", "routes", "test",
                                 f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}", *args],
                                capture_output=True, text=True, timeout=30)
        assert result.stdout.strip() == expected[labels["team"]], (rule["alert"], result.stdout, result.stderr)
