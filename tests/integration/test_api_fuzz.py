"""Hostile input against the real HTTP service: schemathesis on its own OpenAPI document, and
hypothesis-generated bodies for the form and events parsers. Never a 5xx; every error is JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.broker import free_port, port_open
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def service_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    env = {**os.environ, "FEEDBACK_KAFKA_BOOTSTRAP": kafka_bootstrap, "FEEDBACK_HTTP_PORT": str(port),
           "FEEDBACK_DATA_DIR": str(workdir), "FEEDBACK_TOPIC_PREFIX": "fuzz.", "FEEDBACK_FORM_RATE_LIMIT": "",
           "FEEDBACK_LOG_LEVEL": "WARNING", "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY,
           # every webhook enabled, so the fuzzer meets the real signature and token checks
           "FEEDBACK_ZENDESK_WEBHOOK_SECRET": "fuzz-zd", "FEEDBACK_FRESHDESK_WEBHOOK_TOKEN": "fuzz-fd",
           "FEEDBACK_JIRA_WEBHOOK_TOKEN": "fuzz-jira", "FEEDBACK_GENERIC_WEBHOOK_SECRET": "fuzz-generic"}
    with open(workdir / "http.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve-http"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: port_open("127.0.0.1", port), 30, what="http service")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert "Traceback" not in (workdir / "http.log").read_text(errors="replace")


def assert_clean(response: object, status: int, headers: object, body: bytes) -> None:
    """No 5xx; a 4xx carries a JSON body with an ``error`` code."""
    assert status < 500, (status, body[:300])
    if status >= 400:
        value = headers.get("content-type", "")  # type: ignore[attr-defined]
        content_type = str(value[0] if isinstance(value, list) else value)
        assert content_type.startswith("application/json"), (status, content_type, body[:200])
        assert "error" in json.loads(body)


def test_openapi_operations_never_fail_with_5xx(service_url: str) -> None:
    """Every operation of the service's own OpenAPI document, with schemathesis-generated requests."""
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    seen: set[str] = set()

    @given(case=schema.as_strategy())
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        seen.add(f"{case.method} {case.path}")
        assert_clean(response, response.status_code, response.headers, response.content)

    run()
    assert {"POST /v1/events", "POST /forms/{form_id}", "GET /forms/{form_id}"} <= seen


@given(body=st.binary(max_size=2000))
@FUZZ
def test_events_with_arbitrary_bytes(service_url: str, body: bytes) -> None:
    r = httpx.post(f"{service_url}/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (202, 400, 413, 422)
    assert_clean(r, r.status_code, r.headers, r.content)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {"source_ref": st.text(max_size=40), "text": st.text(max_size=200)},
    optional={"nps_score": json_values, "csat_score": json_values, "event_time": json_values,
              "source": st.sampled_from(["email", "webform", "ticket", "event", "fax", ""]),
              "tags": json_values, "attributes": json_values, "feedback_id": json_values},
)


@given(payload=st.one_of(json_values, event_like, st.lists(event_like, max_size=3)))
@FUZZ
def test_events_with_arbitrary_json(service_url: str, payload: object) -> None:
    r = httpx.post(f"{service_url}/v1/events", content=json.dumps(payload).encode(),
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (202, 403, 413, 422), r.text  # 403: a source other than event (docs/security.md)
    assert_clean(r, r.status_code, r.headers, r.content)


form_fields = st.dictionaries(
    st.sampled_from(["comment", "nps_score", "csat_score", "email", "product", "submission_id", "website",
                     "other"]),
    st.text(max_size=80), max_size=7,
)


@given(fields=form_fields, multipart=st.booleans())
@FUZZ
def test_form_with_arbitrary_fields(service_url: str, fields: dict[str, str], multipart: bool) -> None:
    fields = {**fields, "other": "always one field"}  # an empty multipart body is no multipart at all
    if multipart:
        r = httpx.post(f"{service_url}/forms/default", files={k: (None, v) for k, v in fields.items()})
    else:
        r = httpx.post(f"{service_url}/forms/default", content=urlencode(fields).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (202, 400, 422), r.text
    assert_clean(r, r.status_code, r.headers, r.content)


@given(body=st.binary(max_size=1500), content_type=st.sampled_from([
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "multipart/form-data",
    "application/json", "text/plain", ""]))
@FUZZ
def test_form_with_arbitrary_bytes(service_url: str, body: bytes, content_type: str) -> None:
    r = httpx.post(f"{service_url}/forms/default", content=body, headers={"Content-Type": content_type})
    assert r.status_code in (202, 400, 415, 422), r.text
    assert_clean(r, r.status_code, r.headers, r.content)
