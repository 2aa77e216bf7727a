"""Signed acknowledge/resolve links: the real action server on a free port, a real HTTP client, the
warehouse on SQLite and PostgreSQL; and the links in the Slack message a real receiver gets."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from pipeline.signal_config import AlertSettings
from pipeline.signal_schema import Incident
from sinks.alerts import incidents
from sinks.alerts.actions import ActionServer, link
from sinks.alerts.channels import SlackChannel, action_links
from sinks.warehouse.db import make_engine
from tests.integration.test_alert_servers import Receiver
from tests.integration.test_alert_sink import alert_db  # noqa: F401  (the SQLite/PostgreSQL fixture)

pytestmark = pytest.mark.integration
SECRET = b"0123456789abcdef-test"


def open_incident(engine: object) -> uuid.UUID:
    iid = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(incidents.INC.insert().values(
            incident_id=iid, kind="signal", status="open", severity="warning", driver_scope_type="category",
            driver_scope_value="delivery", signals=["negative_share"], started_at=now, opened_at=now, updated_at=now,
            summary="Negative share of delivery feedback 58% vs 21% usual, 1,240 responses since Tue.", examples=[]))
    return iid


def test_a_signed_link_acknowledges_then_resolves_and_bad_links_are_refused(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    server = ActionServer(engine, SECRET, host="127.0.0.1", port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        iid = open_incident(engine)
        ack = link(base, SECRET, "ack", iid, 3600)
        page = httpx.get(ack, timeout=10)
        assert page.status_code == 200 and "<form method=post" in page.text and "58% vs 21%" in page.text
        with engine.connect() as conn:
            assert incidents.get(conn, iid).status == "open"  # type: ignore[union-attr]  # a GET changes nothing
        done = httpx.post(ack, data={"by": "anna", "note": "courier called"}, timeout=10)
        assert done.status_code == 200 and done.json() == {"incident_id": str(iid), "status": "acknowledged",
                                                           "by": "anna"}
        resolved = httpx.post(link(base, SECRET, "resolve", iid, 3600), data={"by": "anna"}, timeout=10)
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        with engine.connect() as conn:
            trail = [(h["action"], h["actor"], h["note"]) for h in incidents.history(conn, iid)]
        assert trail == [("acknowledged", "anna", "courier called"), ("resolved", "anna", None)]

        again = httpx.post(link(base, SECRET, "resolve", iid, 3600), data={"by": "bo"}, timeout=10)
        assert again.status_code == 409 and again.json()["error"] == "already_resolved"
        forged = link(base, b"another-secret-xxxxxx", "ack", iid, 3600)
        assert httpx.post(forged, timeout=10).status_code == 403
        assert httpx.post(forged, timeout=10).json()["error"] == "bad_signature"
        tampered = link(base, SECRET, "ack", iid, 3600).replace("/ack/", "/resolve/")
        assert httpx.post(tampered, timeout=10).status_code == 403  # the action is signed too
        expired = link(base, SECRET, "ack", iid, 60, now=time.time() - 3600)
        assert httpx.post(expired, timeout=10).status_code == 410
        unknown = link(base, SECRET, "ack", uuid.uuid4(), 3600)
        assert httpx.post(unknown, timeout=10).status_code == 404
        assert httpx.get(f"{base}/nothing", timeout=10).json()["error"] == "not_found"
    finally:
        server.stop()
        engine.dispose()


def test_slack_buttons_carry_the_signed_links() -> None:
    receiver = Receiver()
    try:
        settings = AlertSettings(alert_action_url="https://alerts.example.org", alert_action_secret=SECRET.decode())
        now = datetime.now(UTC)
        inc = Incident(incident_id=uuid.uuid4(), status="open", severity="warning", driver_scope_type="category",
                       driver_scope_value="delivery", started_at=now, opened_at=now, summary="s", event="opened",
                       event_id=uuid.uuid4())
        SlackChannel(receiver.url("/slack"), 5.0, actions=action_links(settings)).deliver_incident(inc)
        [req] = receiver.at("/slack")
        [buttons] = [b for b in req.json()["blocks"] if b["type"] == "actions"]
        urls = [e["url"] for e in buttons["elements"]]
        assert urls[0].startswith(f"https://alerts.example.org/actions/ack/{inc.incident_id}?exp=")
        assert "/actions/resolve/" in urls[1] and "sig=" in urls[1]
    finally:
        receiver.close()
