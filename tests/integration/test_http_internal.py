"""The HTTP service's internal port and its offline documentation, against the real service.

``feedback serve-http`` runs as a process on the session's broker with ``FEEDBACK_HTTP_INTERNAL_PORT``:
``/metrics``, ``/docs`` and ``/openapi.json`` answer there (on loopback only) and not on the public
port; headless Chromium renders Swagger UI with every request outside this machine refused.
Without an internal port everything stays on the public port, as before, and ``/docs`` can be turned off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from connectors.http.app import create_app
from pipeline.broker import free_port, port_open
from pipeline.config import HttpSettings
from pipeline.supervisor import _die_with_parent
from pipeline.testing import MemoryPublisher
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration
TOKEN = "docs-test-token-7f3a9c1e5b"


@dataclass
class Running:
    public: str
    internal: str
    proc: subprocess.Popen[bytes]
    public_port: int
    internal_port: int


def outside_address() -> str | None:
    """An address of this machine that is not loopback (where a 0.0.0.0 listener answers), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel picks the route's source
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("internal")
    public_port, internal_port = free_port(), free_port()
    env = {**os.environ, "FEEDBACK_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "FEEDBACK_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.", "FEEDBACK_TOPIC_PARTITIONS": "1",
           "FEEDBACK_DATA_DIR": str(workdir), "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY,
           "FEEDBACK_HTTP_HOST": "0.0.0.0", "FEEDBACK_API_TOKENS": f"crm:{TOKEN}",
           "FEEDBACK_HTTP_PORT": str(public_port), "FEEDBACK_HTTP_INTERNAL_PORT": str(internal_port),
           "FEEDBACK_LOG_FORMAT": "json"}
    env.pop("FEEDBACK_METRICS_HOST", None)  # the default: loopback
    log = open(workdir / "http.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve-http"], env=env, stdout=log, stderr=log,
                            preexec_fn=_die_with_parent)
    running = Running(f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{internal_port}", proc,
                      public_port, internal_port)
    try:
        wait_for(lambda: port_open("127.0.0.1", public_port) and port_open("127.0.0.1", internal_port), 90,
                 what="both ports")
        wait_for(lambda: httpx.get(f"{running.public}/readyz", timeout=5).status_code == 200, 90, what="ready")
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()


def test_operations_and_docs_only_on_the_internal_port(service: Running) -> None:
    accepted = httpx.post(f"{service.public}/v1/events", json={"source_ref": f"int-{uuid.uuid4()}", "text": "Fine"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert accepted.status_code == 202, accepted.text
    for path in ("/metrics", "/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        answer = httpx.get(f"{service.public}{path}", timeout=10)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", path
    for path in ("/healthz", "/readyz"):  # load balancers probe the public port
        assert httpx.get(f"{service.public}{path}", timeout=10).status_code == 200
        assert httpx.get(f"{service.internal}{path}", timeout=10).status_code == 200
    metrics = httpx.get(f"{service.internal}/metrics", timeout=10)
    assert metrics.status_code == 200 and 'feedback_accepted_total{source="event"} 1.0' in metrics.text
    doc = httpx.get(f"{service.internal}/openapi.json", timeout=10).json()
    assert {"/v1/events", "/forms/{form_id}", "/healthz", "/readyz"} <= set(doc["paths"])
    assert "/metrics" not in doc["paths"] and "FeedbackRecord" in doc["components"]["schemas"]
    page = httpx.get(f"{service.internal}/docs", timeout=10).text
    assert '"/docs/assets/swagger-ui-bundle.js"' in page and "https://" not in page.split("<body>")[0]
    assert "cdn" not in page.lower()
    policy = httpx.get(f"{service.internal}/docs", timeout=10).headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy  # a browser loads nothing else
    bundle = httpx.get(f"{service.internal}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and len(bundle.content) > 500_000 and "isOAS31" in bundle.text


def test_the_internal_port_listens_on_loopback_only(service: Running) -> None:
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    assert port_open(address, service.public_port)  # the public port is on 0.0.0.0 here
    assert not port_open(address, service.internal_port)


def test_docs_render_in_chromium_with_no_internet(service: Running, browser: Any) -> None:
    outside: list[str] = []

    def only_this_machine(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", only_this_machine)
    page.goto(f"{service.internal}/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/events']", timeout=30_000)
    assert page.locator(".opblock-summary-path[data-path='/forms/{form_id}']").count() == 2  # GET and POST
    page.click(".opblock-summary-path[data-path='/v1/events']")  # the operation opens: the UI works
    page.wait_for_selector("text=One feedback record or an array of them", timeout=30_000)
    page.close()
    assert outside == []


def test_sigterm_stops_both_ports(service: Running) -> None:
    service.proc.send_signal(signal.SIGTERM)
    service.proc.wait(timeout=30)
    assert not port_open("127.0.0.1", service.public_port) and not port_open("127.0.0.1", service.internal_port)


class InProcess:
    """The app without an internal port, served by uvicorn on a free port (publishing into memory)."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.publisher = MemoryPublisher()
        app = create_app(HttpSettings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path,
                                      customer_hash_key=TEST_CUSTOMER_KEY, **settings),
                         self.publisher)  # type: ignore[arg-type]
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InProcess:
        self.thread.start()
        wait_for(lambda: port_open("127.0.0.1", self.port), 30, what="http service")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def test_without_an_internal_port_everything_stays_on_the_public_port(tmp_path: Path, browser: Any) -> None:
    with InProcess(tmp_path) as s:
        assert httpx.get(f"{s.url}/metrics", timeout=10).status_code == 200
        assert "/metrics" in httpx.get(f"{s.url}/openapi.json", timeout=10).json()["paths"]
        assert '"/docs/assets/swagger-ui-bundle.js"' in httpx.get(f"{s.url}/docs", timeout=10).text
        page = browser.new_page()  # the public app's security headers let the packaged UI run
        page.goto(f"{s.url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/metrics']", timeout=30_000)
        page.close()
        # a client may send a sealed contact, never an address in the clear
        plain = httpx.post(f"{s.url}/v1/events", timeout=10,
                           json={"source_ref": "c-1", "text": "Call me", "contact": "ann@example.org"})
        assert plain.status_code == 422 and plain.json()["details"][0]["loc"] == ["contact"]
        assert s.publisher.records == []


def test_docs_can_be_turned_off(tmp_path: Path) -> None:
    with InProcess(tmp_path, http_docs=False) as s:
        for path in ("/docs", "/docs/assets/swagger-ui-bundle.js"):
            assert httpx.get(f"{s.url}{path}", timeout=10).status_code == 404, path
        assert httpx.get(f"{s.url}/openapi.json", timeout=10).status_code == 200  # for API clients


def test_a_taken_internal_port_is_a_configuration_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {**os.environ, "FEEDBACK_KAFKA_BOOTSTRAP": "127.0.0.1:1", "FEEDBACK_DATA_DIR": str(tmp_path),
               "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY, "FEEDBACK_HTTP_PORT": str(free_port()),
               "FEEDBACK_HTTP_INTERNAL_PORT": str(port)}
        env.pop("FEEDBACK_METRICS_HOST", None)
        done = subprocess.run([sys.executable, "-m", "pipeline", "serve-http"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "FEEDBACK_HTTP_INTERNAL_PORT" in done.stderr + done.stdout
