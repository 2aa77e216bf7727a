"""A client-chosen product reaches Prometheus only as a hash: the alert sink's gauges, read over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from pipeline import metrics
from pipeline.broker import free_port
from sinks.alerts import store
from sinks.alerts.dispatch import Dispatcher
from sinks.alerts.lifecycle import AlertState, alert_id_for
from sinks.warehouse.db import make_engine
from tests.integration.test_alert_sink import HOUR, T0, alert_db  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def test_a_product_alert_is_exported_with_a_hashed_scope(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    product = f"kettle for ann.{uuid.uuid4().hex[:6]}@example.org"  # what any /v1/events client may send
    now = datetime.now(UTC)
    state = AlertState(
        alert_id=alert_id_for("negative_share", "product", product, T0), signal="negative_share",
        scope_type="product", scope_value=product, status="open", severity="warning", first_window_start=T0,
        window_start=T0, window_end=T0 + HOUR, observed=0.45, expected=0.15, sample_size=40, z_score=5.0,
        opened_at=now, updated_at=now, summary="Share of negative feedback rose")
    with engine.begin() as conn:
        assert store.save_alert(conn, state, "opened")
    server = metrics.serve(free_port(), host="127.0.0.1", ready=lambda: True)
    try:
        Dispatcher(engine, []).refresh_gauges()
        body = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
        assert product not in body and "ann." not in body
        hashed = metrics.scope_label("product", product)
        assert (f'feedback_alert_active{{scope_type="product",scope_value="{hashed}",severity="warning",'
                'signal="negative_share"} 1.0') in body
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()
