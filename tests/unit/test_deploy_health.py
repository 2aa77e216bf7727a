"""The /metrics, /healthz, /readyz server of the components without their own HTTP service."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from pipeline import metrics
from pipeline.broker import free_port
from pipeline.errors import ConfigError


@pytest.fixture
def listener() -> Iterator[str]:
    """A real TCP listener standing in for a reachable bootstrap server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _serve(ready: metrics.Readiness) -> tuple[str, object]:
    port = free_port()
    server = metrics.serve(port, host="127.0.0.1", ready=ready)
    return f"http://127.0.0.1:{port}", server


def test_healthz_metrics_and_readyz_follow_the_components_check() -> None:
    state = {"ready": False}
    base, server = _serve(lambda: state["ready"])
    try:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        not_ready = httpx.get(f"{base}/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["error"] == "not_ready"
        state["ready"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        metrics.WRITTEN.labels("feedback").inc(0)
        body = httpx.get(f"{base}/metrics").text
        assert "# TYPE feedback_written_total counter" in body
    finally:
        server.shutdown()  # type: ignore[attr-defined]


def test_a_readiness_check_that_raises_is_not_ready_and_never_an_error_page() -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    base, server = _serve(broken)
    try:
        assert httpx.get(f"{base}/readyz").status_code == 503
        assert httpx.get(f"{base}/healthz").status_code == 200
    finally:
        server.shutdown()  # type: ignore[attr-defined]


def test_broker_reachable_needs_one_listening_bootstrap_server(listener: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    assert metrics.broker_reachable(listener)
    assert metrics.broker_reachable(f"{dead},{listener}")
    assert not metrics.broker_reachable(dead)
    assert not metrics.broker_reachable("not-a-host-list")


def test_default_readiness_checks_the_configured_bootstrap(monkeypatch: pytest.MonkeyPatch, listener: str) -> None:
    monkeypatch.setenv("FEEDBACK_KAFKA_BOOTSTRAP", listener)
    monkeypatch.setenv("FEEDBACK_METRICS_HOST", "127.0.0.1")
    port = free_port()
    server = metrics.serve(port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        server.shutdown()
    monkeypatch.setenv("FEEDBACK_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    port = free_port()
    server = metrics.serve(port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
    finally:
        server.shutdown()


def test_a_port_in_use_is_a_configuration_error() -> None:
    base, server = _serve(lambda: True)
    port = int(base.rsplit(":", 1)[1])
    try:
        with pytest.raises(ConfigError, match=str(port)):
            metrics.serve(port, host="127.0.0.1", ready=lambda: True)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
