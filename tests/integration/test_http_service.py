"""The HTTP service in-process against real brokers: bearer tokens, 503 when the broker is gone, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from connectors.http.app import create_app
from pipeline import broker
from pipeline.config import HttpSettings
from pipeline.publisher import Publisher
from pipeline.topics import ensure_topics
from tests.conftest import TEST_CUSTOMER_KEY

pytestmark = pytest.mark.integration


def settings_for(bootstrap: str, tmp_path: Path, **extra: object) -> HttpSettings:
    return HttpSettings(kafka_bootstrap=bootstrap, data_dir=tmp_path, topic_prefix="http-test.",
                        topic_partitions=1, **{"customer_hash_key": TEST_CUSTOMER_KEY, **extra})  # type: ignore[arg-type]


def test_bearer_tokens_guard_the_events_api(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = settings_for(kafka_bootstrap, tmp_path, api_tokens="alpha,beta")
    ensure_topics(settings)
    publisher = Publisher(settings)
    try:
        with TestClient(create_app(settings, publisher)) as client:
            event = {"source_ref": "auth-1", "text": "hello"}
            r = client.post("/v1/events", json=event)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
            r = client.post("/v1/events", json=event, headers={"Authorization": "Bearer alphabet"})
            assert r.status_code == 401
            r = client.post("/v1/events", json=event, headers={"Authorization": "Bearer beta"})
            assert r.status_code == 202 and r.json()["accepted"] == 1
            # forms stay public: customers have no token
            r = client.post("/forms/default", data={"comment": "public form"})
            assert r.status_code == 202
    finally:
        publisher.close()


def test_openapi_document_describes_the_api(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = settings_for(kafka_bootstrap, tmp_path)
    publisher = Publisher(settings)
    try:
        with TestClient(create_app(settings, publisher)) as client:
            doc = client.get("/openapi.json").json()
            assert {"/v1/events", "/forms/{form_id}", "/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
            assert "FeedbackRecord" in doc["components"]["schemas"]
            assert client.get("/readyz").json() == {"status": "ready"}
            r = client.get("/nowhere")
            assert r.status_code == 404 and r.json()["error"] == "not_found"
            r = client.delete("/v1/events")
            assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
            assert client.get("/forms/..%2Fetc").status_code == 404
    finally:
        publisher.close()


def test_503_with_retry_after_when_the_broker_cannot_take_records(tmp_path: Path) -> None:
    port = broker.free_port()
    proc = broker.start(port)
    settings = settings_for(f"127.0.0.1:{port}", tmp_path, publish_timeout_seconds=3)
    ensure_topics(settings)
    publisher = Publisher(settings, request_timeout_ms=2000, retries=0)
    try:
        with TestClient(create_app(settings, publisher)) as client:
            assert client.post("/v1/events", json={"source_ref": "ok", "text": "fine"}).status_code == 202
            proc.kill()
            proc.wait()
            r = client.post("/v1/events", json={"source_ref": "lost", "text": "broker is gone"})
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "broker_unavailable" and int(r.headers["retry-after"]) >= 1
    finally:
        publisher.close(timeout=1)
        if proc.poll() is None:
            proc.kill()
