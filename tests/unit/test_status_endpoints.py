"""`feedback status` and the `feedback up` banner look for the HTTP service's /metrics where it is served."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.cli import _banner
from pipeline.config import UpSettings, load
from pipeline.status import local_endpoints
from tests.conftest import TEST_CUSTOMER_KEY


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    monkeypatch.setenv("FEEDBACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEEDBACK_CUSTOMER_HASH_KEY", TEST_CUSTOMER_KEY)
    monkeypatch.setenv("FEEDBACK_HTTP_PORT", "18080")
    return monkeypatch


def test_without_an_internal_port_metrics_are_on_the_public_port(env: pytest.MonkeyPatch) -> None:
    settings = load(UpSettings)
    assert local_endpoints(settings)["http"] == "http://127.0.0.1:18080"
    banner = _banner(settings, SimpleNamespace(with_broker=True, children=[]))
    assert ":18080/metrics" in banner and ":18080/docs" in banner


def test_with_an_internal_port_status_and_banner_use_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("FEEDBACK_HTTP_INTERNAL_PORT", "19107")
    settings = load(UpSettings)
    assert local_endpoints(settings)["http"] == "http://127.0.0.1:19107"
    banner = _banner(settings, SimpleNamespace(with_broker=True, children=[]))
    assert "127.0.0.1:19107/metrics" in banner and "127.0.0.1:19107/docs" in banner
    assert ":18080/metrics" not in banner
