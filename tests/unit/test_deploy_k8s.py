"""deploy/k8s: rendered by a real Kustomize (``kubectl kustomize``), validated offline against the
Kubernetes JSON schemas (``kubernetes-validate``, strict), and checked against the code: commands in
the CLI, probes on the ports each component serves, settings that exist, selectors that match."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.errors import ConfigError
from tests.conftest import require
from tests.unit.test_deploy_cli import cli_command, env_names, known_env_names, settings_class, validate_env

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
#: A customer-hash key as an operator makes one (the Secret ships a placeholder the settings refuse).
OPERATOR_KEY = "3b9f0c6e1d8a47f25c0e9b7a1f4d2c6e8a0b3d5f7c9e1a2b4d6f8e0c2a4b6d8f"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes release the manifests promise to work on


def _render(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, "kubectl (renders the Kustomization offline: `kubectl kustomize`)")
    result = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return _render(K8S)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_every_file_is_in_the_kustomization_and_every_object_is_valid(objects: list[dict[str, Any]]) -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert files == listed, f"manifests not rendered: {files - listed}; listed but missing: {listed - files}"
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Job", "Namespace"} <= kinds
    for obj in objects:
        _validate(obj)  # raises ValidationError naming the field
        assert obj["metadata"].get("namespace", "feedback") == "feedback"


def test_the_validator_rejects_a_broken_manifest(objects: list[dict[str, Any]]) -> None:
    deployment = dict(_by_kind(objects, "Deployment")["feedback-http"])
    spec = dict(deployment["spec"])
    spec["replicaz"] = 2  # a typo: strict validation must refuse unknown fields
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate({**deployment, "spec": spec})
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate({**deployment, "spec": {**deployment["spec"], "replicas": "two"}})


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def _env(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The FEEDBACK_* environment a container gets: envFrom ConfigMap/Secret, then env."""
    configmaps, secrets = _by_kind(objects, "ConfigMap"), _by_kind(objects, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:  # a key of a Secret (valueFrom.secretKeyRef)
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
    return env


def test_each_workload_runs_a_real_command_with_real_settings(objects: list[dict[str, Any]]) -> None:
    workloads = {**_by_kind(objects, "Deployment"), **_by_kind(objects, "Job")}
    assert {"feedback-http", "feedback-processor", "feedback-sink-warehouse", "feedback-sink-alerts",
            "feedback-sink-followups", "feedback-connector-email", "feedback-migrate"} <= set(workloads)
    shared = {**_by_kind(objects, "ConfigMap")["feedback-config"]["data"],
              **_by_kind(objects, "Secret")["feedback-secrets"]["stringData"],
              **_by_kind(objects, "Secret")["feedback-followups"]["stringData"]}
    assert set(shared) <= known_env_names(), sorted(set(shared) - known_env_names())
    placeholder = shared["FEEDBACK_CUSTOMER_HASH_KEY"]
    with pytest.raises(ConfigError, match="FEEDBACK_CUSTOMER_HASH_KEY"):  # the shipped placeholder never starts
        validate_env(settings_class(cli_command(["migrate"])), {"FEEDBACK_CUSTOMER_HASH_KEY": placeholder}, "secret")
    for name, obj in workloads.items():
        container = _container(obj)
        assert container["image"] == "feedback-pipeline:0.1.0", name  # the kustomize image override applied
        cls = settings_class(cli_command(container["args"]))
        own = {e["name"] for e in container.get("env", [])}
        assert own <= env_names(cls), f"{name}: {sorted(own - env_names(cls))} are not settings of {cls.__name__}"
        env = {k: v for k, v in _env(objects, container).items() if k in env_names(cls)}
        if env.get("FEEDBACK_CUSTOMER_HASH_KEY") == placeholder:  # replaced as an operator would
            env["FEEDBACK_CUSTOMER_HASH_KEY"] = OPERATOR_KEY
        validate_env(cls, env, f"workload {name}")


def test_probes_resources_and_security(objects: list[dict[str, Any]]) -> None:
    for name, deployment in _by_kind(objects, "Deployment").items():
        container = _container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert live["path"] == "/healthz" and ready["path"] == "/readyz", name
        assert live["port"] in ports and ready["port"] in ports, name
        served = {e["value"] for e in container["env"] if e["name"].endswith("_PORT")}
        assert {str(ports[live["port"]])} <= served, f"{name}: probes a port the component does not serve"
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"} == set(resources["limits"]), name
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts, f"{name}: FEEDBACK_DATA_DIR and /tmp must be writable"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        metrics_port = ports["internal"] if name == "feedback-http" else ports[live["port"]]
        assert annotations["prometheus.io/port"] == str(metrics_port), name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()


def test_http_service_ingress_hpa_and_pdbs_point_at_real_workloads(objects: list[dict[str, Any]]) -> None:
    deployments = _by_kind(objects, "Deployment")
    service = _by_kind(objects, "Service")["feedback-http"]
    http_labels = deployments["feedback-http"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= http_labels.items()
    assert deployments["feedback-http"]["spec"]["replicas"] >= 2
    target_port = service["spec"]["ports"][0]["targetPort"]
    assert target_port in {p["name"] for p in _container(deployments["feedback-http"])["ports"]}
    backend = _by_kind(objects, "Ingress")["feedback-http"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "feedback-http"
    assert backend["service"]["port"]["name"] == service["spec"]["ports"][0]["name"]

    hpa = _by_kind(objects, "HorizontalPodAutoscaler")["feedback-processor"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "feedback-processor"}
    partitions = int(_by_kind(objects, "ConfigMap")["feedback-config"]["data"]["FEEDBACK_TOPIC_PARTITIONS"])
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"] <= partitions
    assert _container(deployments["feedback-processor"])["resources"]["requests"]["cpu"], "HPA needs a CPU request"

    pdbs = _by_kind(objects, "PodDisruptionBudget")
    assert {"feedback-http", "feedback-processor", "feedback-sink-warehouse"} <= set(pdbs)
    for name, pdb in pdbs.items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [d for d in deployments.values()
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, f"PDB {name} selects {len(matched)} deployments"
        replicas = matched[0]["spec"]["replicas"]
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < replicas, f"PDB {name} would block every eviction"


def test_no_real_secret_is_shipped(objects: list[dict[str, Any]]) -> None:
    for value in _by_kind(objects, "Secret")["feedback-secrets"]["stringData"].values():
        assert "CHANGE-ME" in value
    followups = _by_kind(objects, "Secret")["feedback-followups"]["stringData"]
    for key, value in followups.items():
        assert "CHANGE-ME" in value or key == "FEEDBACK_FOLLOWUP_TARGET", key


def test_the_followup_sink_and_the_form_share_the_contact_key_from_a_secret(objects: list[dict[str, Any]]) -> None:
    """The follow-up sink runs like the other sinks, its secrets only from the Secret; the HTTP service
    reads the same contact key (optional: without the Secret the form offers no contact)."""
    deployments = _by_kind(objects, "Deployment")
    sink = _container(deployments["feedback-sink-followups"])
    assert sink["args"] == ["sink", "followups"] and deployments["feedback-sink-followups"]["spec"]["replicas"] == 1
    assert {"secretRef": {"name": "feedback-followups"}} in sink["envFrom"]
    assert not any(e["name"] in ("FEEDBACK_CONTACT_KEY", "FEEDBACK_FOLLOWUP_TOKEN") for e in sink.get("env", []))
    from sinks.followups.sink import FollowupSettings

    env = {k: v for k, v in _env(objects, sink).items()  # the shared placeholders are the test above's
           if k in env_names(FollowupSettings) and k != "FEEDBACK_CUSTOMER_HASH_KEY"}
    settings = validate_env(FollowupSettings, env, "feedback-sink-followups")
    assert isinstance(settings, FollowupSettings) and settings.followup_target == "zendesk"
    assert settings.contact_key is not None and "CHANGE-ME" in settings.contact_key.get_secret_value()
    http = _container(deployments["feedback-http"])
    [key] = [e for e in http["env"] if e["name"] == "FEEDBACK_CONTACT_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "feedback-followups", "key": "FEEDBACK_CONTACT_KEY",
                                                "optional": True}


def test_the_http_service_keeps_metrics_and_docs_on_its_internal_port(objects: list[dict[str, Any]]) -> None:
    """/metrics, /docs and /openapi.json on the internal port, which no Service or Ingress exposes;
    the client address from the Ingress's X-Forwarded-For."""
    deployment = _by_kind(objects, "Deployment")["feedback-http"]
    container = _container(deployment)
    env = _env(objects, container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["FEEDBACK_HTTP_INTERNAL_PORT"] == str(ports["internal"]) != env["FEEDBACK_HTTP_PORT"]
    assert env["FEEDBACK_METRICS_HOST"] == "0.0.0.0"  # Prometheus scrapes the pod
    assert env["FEEDBACK_TRUST_PROXY"] == "true"
    service = _by_kind(objects, "Service")["feedback-http"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    paths = [p["path"] for p in _by_kind(objects, "Ingress")["feedback-http"]["spec"]["rules"][0]["http"]["paths"]]
    assert not {"/metrics", "/docs", "/openapi.json", "/"} & set(paths)
