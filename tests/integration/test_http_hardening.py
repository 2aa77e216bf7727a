"""Hostile-input protections of the HTTP service, against a real broker and a real uvicorn server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from connectors.http.app import create_app
from pipeline.broker import free_port, port_open
from pipeline.config import HttpSettings
from pipeline.publisher import Publisher
from pipeline.topics import ensure_topics
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def make_client(kafka_bootstrap: str, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    publishers: list[Publisher] = []

    def make(**extra: object) -> TestClient:
        settings = HttpSettings(kafka_bootstrap=kafka_bootstrap, data_dir=tmp_path, topic_prefix="harden.",
                                topic_partitions=1, **{"customer_hash_key": TEST_CUSTOMER_KEY, **extra})  # type: ignore[arg-type]
        ensure_topics(settings)
        publishers.append(Publisher(settings))
        return TestClient(create_app(settings, publishers[-1]))

    yield make
    for p in publishers:
        p.close()


def test_form_rate_limit_answers_429_with_retry_after(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(form_rate_limit="3/minute") as client:
        codes = [client.post("/forms/default", data={"comment": f"c{i}"}).status_code for i in range(3)]
        assert codes == [202, 202, 202]
        r = client.post("/forms/default", data={"comment": "one too many"})
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # another form has its own budget; the events API is not rate limited by the form limit
        assert client.post("/forms/other", data={"comment": "x"}).status_code == 202
        assert client.post("/v1/events", json={"source_ref": "rl", "text": "x"}).status_code == 202


def test_form_page_has_a_strict_csp_with_a_nonce(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client() as client:
        r = client.get("/forms/default")
        csp = r.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)  # type: ignore[union-attr]
        assert f'<style nonce="{nonce}">' in r.text
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert client.get("/forms/default").headers["content-security-policy"] != csp  # fresh nonce
        assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_cors_allow_list_for_embedded_forms(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(cors_origins="https://shop.example.com") as client:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = client.options("/forms/default", headers={"Origin": "https://shop.example.com", **pre})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://shop.example.com"
        bad = client.options("/forms/default", headers={"Origin": "https://evil.example", **pre})
        assert "access-control-allow-origin" not in bad.headers
        page = client.get("/forms/default")
        assert "frame-ancestors https://shop.example.com" in page.headers["content-security-policy"]
        assert "x-frame-options" not in page.headers


def test_too_many_headers_is_431(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(max_header_count=20) as client:
        r = client.get("/healthz", headers={f"X-Junk-{i}": "1" for i in range(30)})
        assert r.status_code == 431 and r.json()["error"] == "too_many_headers"


@pytest.fixture
def http_service(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real `feedback serve-http` process with debug logs and secrets configured."""
    port = free_port()
    env = {**os.environ, "FEEDBACK_KAFKA_BOOTSTRAP": kafka_bootstrap, "FEEDBACK_HTTP_PORT": str(port),
           "FEEDBACK_DATA_DIR": str(tmp_path), "FEEDBACK_TOPIC_PREFIX": "harden2.",
           "FEEDBACK_API_TOKENS": "tok-SECRET-4b1d,tok-OTHER-77aa", "FEEDBACK_LOG_LEVEL": "DEBUG",
           "FEEDBACK_CUSTOMER_HASH_KEY": "hashkey-9c2e-private-0f3b7a1d5e8c", "FEEDBACK_BODY_TIMEOUT_SECONDS": "1",
           "FEEDBACK_LOG_FORMAT": "json"}
    log = tmp_path / "http.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve-http"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: port_open("127.0.0.1", port), 30, what="http service")
            yield f"http://127.0.0.1:{port}", log
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_slow_body_times_out_with_408(http_service: tuple[str, Path]) -> None:
    url, _ = http_service
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer tok-OTHER-77aa\r\nContent-Length: 200\r\n\r\n{")
        started = time.monotonic()
        answer = b""
        for _ in range(6):  # trickle a byte every half second: slower than the 1 s body timeout allows
            try:
                s.sendall(b" ")
            except OSError:
                break
            time.sleep(0.5)
        s.settimeout(10)
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 8


def test_secrets_never_reach_the_logs(http_service: tuple[str, Path]) -> None:
    url, log = http_service
    ok = httpx.post(f"{url}/v1/events", json={"source_ref": "s1", "text": "hello"},
                    headers={"Authorization": "Bearer tok-SECRET-4b1d"})
    assert ok.status_code == 202
    bad = httpx.post(f"{url}/v1/events", json={"source_ref": "s2", "text": "x"},
                     headers={"Authorization": "Bearer tok-SECRET-4b1dX"})
    assert bad.status_code == 401
    httpx.post(f"{url}/forms/default", data={"comment": "hi", "email": "private.person@example.org"})
    time.sleep(0.5)
    text = log.read_text(errors="replace")
    assert "http service ready" in text  # the log is really being written
    for secret in ("tok-SECRET-4b1d", "tok-OTHER-77aa",
                   "hashkey-9c2e-private-0f3b7a1d5e8c", "private.person@example.org"):
        assert secret not in text
