"""The HTTP service never serves anonymous /v1/events to other machines unless told to.

``feedback serve-http`` is run as a process: on a non-loopback address without
``FEEDBACK_API_TOKENS`` it exits with status 2 and a message naming the variable; with the tokens, or
with ``FEEDBACK_ALLOW_ANONYMOUS_EVENTS=true``, it serves; a placeholder token is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipeline.broker import free_port, port_open
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


def serve(tmp_path: Path, bootstrap: str, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("FEEDBACK_API_TOKENS", "FEEDBACK_ALLOW_ANONYMOUS_EVENTS")}
    full = {**inherited, "FEEDBACK_KAFKA_BOOTSTRAP": bootstrap, "FEEDBACK_HTTP_HOST": "0.0.0.0",
            "FEEDBACK_HTTP_PORT": str(port), "FEEDBACK_DATA_DIR": str(tmp_path),
            "FEEDBACK_CUSTOMER_HASH_KEY": TEST_CUSTOMER_KEY, "FEEDBACK_TOPIC_PREFIX": "exp.",
            **env}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve-http"], env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, port


def test_anonymous_events_on_a_public_address_are_refused_at_start(tmp_path: Path, kafka_bootstrap: str) -> None:
    proc, _ = serve(tmp_path, kafka_bootstrap)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "FEEDBACK_API_TOKENS" in out and "FEEDBACK_ALLOW_ANONYMOUS_EVENTS" in out


def test_a_placeholder_token_is_refused_at_start(tmp_path: Path, kafka_bootstrap: str) -> None:
    proc, _ = serve(tmp_path, kafka_bootstrap, FEEDBACK_API_TOKENS="crm:CHANGE-ME")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "placeholder" in out, out


@pytest.mark.parametrize("env", [{"FEEDBACK_API_TOKENS": "crm:tok-exposure-77"},
                                 {"FEEDBACK_ALLOW_ANONYMOUS_EVENTS": "true"}], ids=["tokens", "allowed"])
def test_the_service_starts_with_tokens_or_when_anonymous_is_allowed(tmp_path: Path, kafka_bootstrap: str,
                                                                     env: dict[str, str]) -> None:
    proc, port = serve(tmp_path, kafka_bootstrap, **env)
    try:
        wait_for(lambda: proc.poll() is not None or port_open("127.0.0.1", port), 90, what="the service")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        r = httpx.post(f"http://127.0.0.1:{port}/v1/events", json={"source_ref": "e-1", "text": "hello"},
                       timeout=30)
        assert r.status_code == (401 if "FEEDBACK_API_TOKENS" in env else 202), r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
