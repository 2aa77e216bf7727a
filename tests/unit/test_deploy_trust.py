"""The deploy files expose only the public paths and never run /v1/events without tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.http.security import check_exposure, parse_api_tokens
from pipeline.errors import ConfigError

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
COMPOSE = K8S.parent / "docker-compose.yml"


def _objects(name: str) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all((K8S / name).read_text()) if o]


def test_the_ingress_routes_only_the_public_paths() -> None:
    ingress = next(o for o in _objects("http.yaml") if o["kind"] == "Ingress")
    paths = [(p["path"], p["pathType"]) for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert sorted(paths) == [("/forms", "Prefix"), ("/v1/events", "Exact"), ("/webhooks", "Prefix")]


def test_the_k8s_secret_needs_real_tokens() -> None:
    secret = next(o for o in _objects("secret.yaml") if o["kind"] == "Secret")
    placeholder = secret["stringData"]["FEEDBACK_API_TOKENS"]
    with pytest.raises(ConfigError, match="placeholder"):
        parse_api_tokens(placeholder.split(","))
    http = next(o for o in _objects("http.yaml") if o["kind"] == "Deployment")
    container = http["spec"]["template"]["spec"]["containers"][0]
    host = {e["name"]: e.get("value") for e in container["env"]}["FEEDBACK_HTTP_HOST"]
    with pytest.raises(ConfigError, match="FEEDBACK_API_TOKENS"):
        check_exposure(host, [], allow_anonymous=False)  # what the pod would do without the key


def test_compose_requires_the_tokens() -> None:
    http = yaml.safe_load(COMPOSE.read_text())["services"]["http"]["environment"]
    assert http["FEEDBACK_API_TOKENS"].startswith("${FEEDBACK_API_TOKENS:?")


@pytest.mark.parametrize(("host", "ok"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                           ("0.0.0.0", False), ("10.0.0.5", False), ("feedback.internal", False)])
def test_only_loopback_may_run_without_tokens(host: str, ok: bool) -> None:
    if ok:
        check_exposure(host, [], allow_anonymous=False)
    else:
        with pytest.raises(ConfigError):
            check_exposure(host, [], allow_anonymous=False)
    check_exposure(host, [], allow_anonymous=True)
    check_exposure(host, parse_api_tokens(["crm:t0k"]), allow_anonymous=False)
