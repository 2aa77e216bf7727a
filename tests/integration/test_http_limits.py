"""/v1/events bodies are bounded while they are parsed, against a real broker and the real app.

The count and size limits stop the parse at the first record past them (the rest of the body is
never decoded: a broken tail behind the limit does not change the answer); a body over
``FEEDBACK_MAX_REQUEST_BYTES`` (4 MiB by default) is refused before parsing; JSON nested deeper than
the decoder's recursion limit is a 400 with a JSON body, never a 500, on the events and form routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from connectors.http.app import create_app
from pipeline.config import HttpSettings
from pipeline.publisher import Publisher
from pipeline.topics import ensure_topics
from tests.conftest import TEST_CUSTOMER_KEY

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = HttpSettings(kafka_bootstrap=kafka_bootstrap, data_dir=tmp_path_factory.mktemp("limits"),
                            topic_prefix="limits.", topic_partitions=1, customer_hash_key=TEST_CUSTOMER_KEY)  # type: ignore[call-arg]
    ensure_topics(settings)
    publisher = Publisher(settings)
    with TestClient(create_app(settings, publisher), raise_server_exceptions=False) as c:
        yield c
    publisher.close()


def post(client: TestClient, body: bytes, path: str = "/v1/events") -> tuple[int, dict[str, object]]:
    r = client.post(path, content=body, headers=JSON)
    return r.status_code, r.json()


def test_the_record_count_is_enforced_while_parsing(client: TestClient) -> None:
    many = b"[" + b'{"source_ref": "r", "text": "t"},' * 100_000 + b'{"source_ref": "r", "text": "t"}]'
    assert post(client, many)[0] == 413
    # a broken tail behind record 501 is never reached: still 413, not 400
    status, body = post(client, b"[" + b"{}," * 501 + b"this is not JSON")
    assert (status, body["error"]) == (413, "too_many_records")
    ok = json.dumps([{"source_ref": f"ok-{n}", "text": "fine"} for n in range(500)]).encode()
    assert post(client, ok)[0] == 202


def test_a_record_over_its_size_stops_the_parse(client: TestClient) -> None:
    big = json.dumps({"source_ref": "big", "text": "x" * 70_000}).encode()
    status, body = post(client, b"[" + big + b", broken")
    assert (status, body["error"]) == (413, "record_too_large")


def test_a_body_over_the_request_limit_is_refused_before_parsing(client: TestClient) -> None:
    record = json.dumps({"source_ref": "r", "text": "y" * 60_000}).encode()
    body = b"[" + b",".join([record] * 80) + b"]"  # 4.8 MB: 80 records within their own limits
    status, answer = post(client, body)
    assert (status, answer["error"]) == (413, "payload_too_large")


@pytest.mark.parametrize("path", ["/v1/events", "/forms/default"])
def test_deep_nesting_is_a_400_never_a_500(client: TestClient, path: str) -> None:
    deep = b'{"source_ref": "d", "text": "t", "attributes": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    status, body = post(client, deep, path)
    assert (status, body["error"]) == (400, "too_deeply_nested")
    status, body = post(client, b"[" + deep + b"]")
    assert (status, body["error"]) == (400, "too_deeply_nested")


def test_an_event_dated_in_the_future_is_refused(client: TestClient) -> None:
    now = datetime.now(UTC)
    late = {"source_ref": "future", "text": "from tomorrow", "event_time": (now + timedelta(days=1)).isoformat()}
    status, body = post(client, json.dumps([{"source_ref": "ok", "text": "today"}, late]).encode())
    assert (status, body["error"]) == (422, "event_time_in_future")
    assert body["details"] == [{"index": 1, "loc": ["event_time"], "msg": "in the future"}]
    skewed = {"source_ref": "skew", "text": "clock a minute fast",
              "event_time": (now + timedelta(minutes=1)).isoformat()}
    assert post(client, json.dumps(skewed).encode())[0] == 202
