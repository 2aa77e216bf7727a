"""The hot POST routes are served by plain Starlette routes in front of the FastAPI ones: same answers,
same OpenAPI document, same error bodies (no broker: a recording publisher)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi.testclient import TestClient

from connectors.http.app import HOT_PATHS, create_app
from pipeline.broker import free_port
from pipeline.config import HttpSettings
from pipeline.errors import TransientError
from pipeline.schema import FeedbackRecord
from tests.bench.tickets_stage import SECRET, webhook_request
from tests.conftest import TEST_CUSTOMER_KEY


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[FeedbackRecord] = []
        self.fail = fail

    async def publish_async(self, records: Sequence[FeedbackRecord], timeout: float = 10.0) -> None:
        if self.fail:
            raise TransientError("no broker", retry_after=3)
        self.records.extend(records)

    async def ready_async(self) -> bool:
        return not self.fail


def client_for(tmp_path: Path, publisher: RecordingPublisher) -> TestClient:
    # a port nobody listens on: nothing in these tests may reach a real broker
    settings = HttpSettings(data_dir=tmp_path, customer_hash_key=TEST_CUSTOMER_KEY,
                            zendesk_webhook_secret=SECRET.decode(), kafka_bootstrap=f"127.0.0.1:{free_port()}")
    return TestClient(create_app(settings, publisher))  # type: ignore[arg-type]


def test_hot_routes_keep_their_openapi_and_method_errors(tmp_path: Path) -> None:
    with client_for(tmp_path, RecordingPublisher()) as client:
        paths = client.get("/openapi.json").json()["paths"]
        for path in HOT_PATHS:
            assert "post" in paths[path], path
        for path in ("/v1/events", "/webhooks/zendesk"):
            r = client.get(path)
            assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
            assert r.headers["allow"] == "POST" and r.headers["x-content-type-options"] == "nosniff"


def test_hot_routes_publish_and_answer_like_before(tmp_path: Path) -> None:
    publisher = RecordingPublisher()
    with client_for(tmp_path, publisher) as client:
        r = client.post("/v1/events", json={"source_ref": "direct-1", "text": "hello"})
        assert r.status_code == 202 and r.json()["accepted"] == 1
        path, body, headers = webhook_request("123456", 1)
        hook = client.post(path, content=body, headers=headers)
        assert hook.status_code == 202 and hook.json()["skipped"] == []
        bad = client.post(path, content=body, headers={**headers, "X-Zendesk-Webhook-Signature": "x"})
        assert bad.status_code == 401 and bad.json()["error"] == "bad_signature"
        assert client.post("/v1/events", content=b"{", headers={"Content-Type": "application/json"}).json()[
            "error"] == "malformed_json"
    ids = r.json()["feedback_ids"] + hook.json()["feedback_ids"]
    assert [str(rec.feedback_id) for rec in publisher.records] == ids


def test_webhook_503_carries_the_publishers_retry_after(tmp_path: Path) -> None:
    with client_for(tmp_path, RecordingPublisher(fail=True)) as client:
        path, body, headers = webhook_request("123456", 2)
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 503 and r.json()["error"] == "broker_unavailable"
        assert r.headers["retry-after"] == "3"
