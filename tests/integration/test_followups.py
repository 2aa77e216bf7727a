"""Follow-ups against a real local HTTP server answering as Zendesk's and Freshdesk's create-ticket APIs
document (201 with the ticket, 429 with Retry-After, 422 on a validation error), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, insert, select

from pipeline.config import SinkSettings
from pipeline.errors import TransientError
from pipeline.schema import EnrichedFeedback, FeedbackRecord, customer_ref
from processors.enrich import Enricher
from processors.taxonomy import Taxonomy
from sinks.followups.models import Contact, FollowUp
from sinks.followups.sink import FollowupSettings, FollowupSink
from sinks.warehouse.alerts import IncidentRow
from sinks.warehouse.consumer import WarehouseSink
from sinks.warehouse.models import Feedback
from sinks.warehouse.retention import erase

pytestmark = pytest.mark.integration
KEY = Fernet.generate_key()


class FakeSaaS:
    """A local server: each POST takes the next prepared (status, headers, body) answer; the requests are kept."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                status, headers, answer = outer.answers.pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def saas() -> Iterator[FakeSaaS]:
    s = FakeSaaS()
    yield s
    s.server.shutdown()


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(Taxonomy.load())


def item(enricher: Enricher, nps: int | None, email: str | None, text: str = "", **fields: Any) -> EnrichedFeedback:
    contact = Fernet(KEY).encrypt(email.encode()).decode() if email else None
    fields = {"channel": "form:default", **fields}
    rec = FeedbackRecord(source="webform", source_ref=str(uuid.uuid4()), text=text, nps_score=nps,
                         customer_ref=customer_ref(email or "anon@example.org", b"k"), contact=contact, **fields)
    return enricher.enrich(rec)


def store(engine: Engine, tmp_path: Path, items: list[EnrichedFeedback]) -> None:
    """The warehouse sink's write: feedback rows, and the sealed contacts into ``contacts`` only."""
    url = engine.url.render_as_string(hide_password=False)
    wh = WarehouseSink(SinkSettings(data_dir=tmp_path, warehouse_url=url))
    wh.setup()
    try:
        assert wh.write(items) == []
    finally:
        wh.close()


def sink(engine: Engine, tmp_path: Path, **settings: Any) -> FollowupSink:
    s = FollowupSink(FollowupSettings(data_dir=tmp_path, contact_key=KEY.decode(), **settings), engine)
    s.setup()
    return s


def trail(engine: Engine, feedback_id: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(FollowUp).where(FollowUp.feedback_id == feedback_id)).one_or_none()


ZENDESK_TICKET = {"ticket": {"id": 35436, "url": "https://example.zendesk.com/api/v2/tickets/35436.json",
                             "subject": "Follow up", "status": "new", "requester_id": 20978392}}


def test_zendesk_ticket_once_after_a_429(warehouse: Engine, saas: FakeSaaS, enricher: Enricher,
                                         tmp_path: Path) -> None:
    s = sink(warehouse, tmp_path, followup_target="zendesk", followup_url=saas.url,
             followup_user="agent@example.com", followup_token="tok")
    unhappy = item(enricher, 3, "ann@example.org", "The courier left my parcel in the rain")
    happy = item(enricher, 10, "bob@example.org")
    silent = item(enricher, 1, None, "Awful")  # no consent: nothing kept, nothing sent
    saas.answers = [(429, {"Retry-After": "7"}, {"error": "APIRateLimitExceeded"}), (201, {}, ZENDESK_TICKET)]
    with pytest.raises(TransientError) as exc:
        s.write([unhappy, happy, silent])
    assert exc.value.retry_after == 7.0  # the runner writes the batch again no sooner than Retry-After
    row = trail(warehouse, unhappy.feedback_id)
    assert (row.status, row.attempts, row.target, row.reason) == ("pending", 1, "zendesk", "detractor")
    assert "429" in row.error
    s.write([unhappy, happy, silent])
    row = trail(warehouse, unhappy.feedback_id)
    assert (row.status, row.ticket_id, row.attempts, row.error) == ("created", "35436", 2, None)
    s.write([unhappy, happy, silent])  # redelivered: no second ticket
    assert len(saas.requests) == 2 and trail(warehouse, happy.feedback_id) is None
    assert trail(warehouse, silent.feedback_id) is None
    sent = saas.requests[1]
    assert sent["path"] == "/api/v2/tickets" and sent["headers"]["Idempotency-Key"] == str(unhappy.feedback_id)
    ticket = sent["body"]["ticket"]
    assert ticket["requester"] == {"email": "ann@example.org"} and "parcel in the rain" in ticket["comment"]["body"]
    auth = base64.b64decode(sent["headers"]["Authorization"].removeprefix("Basic ")).decode()
    assert auth == "agent@example.com/token:tok"
    store(warehouse, tmp_path, [unhappy, happy, silent])
    store(warehouse, tmp_path, [unhappy, happy, silent])  # redelivered: the same rows
    with warehouse.connect() as conn:
        ids = [unhappy.feedback_id, happy.feedback_id, silent.feedback_id]
        contacts = {r.feedback_id: r for r in conn.execute(select(Contact).where(Contact.feedback_id.in_(ids)))}
        attributes = [str(a) for a in conn.execute(select(Feedback.attributes).where(Feedback.feedback_id.in_(ids)))
                      .scalars()]
    assert set(contacts) == {unhappy.feedback_id, happy.feedback_id}
    stored = contacts[happy.feedback_id].address_encrypted
    assert "bob@" not in stored and Fernet(KEY).decrypt(stored.encode()) == b"bob@example.org"
    assert stored == happy.contact and "contact" not in repr(happy)  # sealed as sent; never in a repr (logs)
    # neither the token nor the address is in the feedback rows' attributes
    assert len(attributes) == 3 and not any(stored in a or "bob@" in a or "contact" in a for a in attributes)
    # feedback erase covers the contacts and the trail (both keyed by customer and feedback id)
    result = erase(warehouse, [unhappy.customer_ref or ""])
    assert result.deleted.get("contacts") == 1 and result.deleted.get("followups") == 1


def test_freshdesk_ticket_and_a_refusal(warehouse: Engine, saas: FakeSaaS, enricher: Enricher,
                                        tmp_path: Path) -> None:
    s = sink(warehouse, tmp_path, followup_target="freshdesk", followup_url=saas.url, followup_token="fdkey")
    first, second = item(enricher, 0, "cat@example.org"), item(enricher, 4, "dan@example.org", "Too slow")
    saas.answers = [(201, {}, {"id": 1, "subject": "Follow up", "status": 2, "priority": 2,
                               "requester_id": 1000, "source": 2}),
                    (400, {}, {"description": "Validation failed", "errors": [
                        {"field": "email", "message": "There is no contact matching the given email",
                         "code": "invalid_value"}]})]
    s.write([first, second])
    assert (trail(warehouse, first.feedback_id).status, trail(warehouse, first.feedback_id).ticket_id) == (
        "created", "1")
    refused = trail(warehouse, second.feedback_id)
    assert refused.status == "failed" and "Validation failed" in refused.error
    s.write([first, second])  # neither is sent again
    assert len(saas.requests) == 2
    body = saas.requests[0]["body"]
    assert body["email"] == "cat@example.org" and body["status"] == 2 and "score without a comment" in body[
        "description"]
    assert base64.b64decode(saas.requests[0]["headers"]["Authorization"][6:]).decode() == "fdkey:X"


def test_an_interrupted_send_is_never_repeated(warehouse: Engine, saas: FakeSaaS, enricher: Enricher,
                                               tmp_path: Path) -> None:
    s = sink(warehouse, tmp_path, followup_target="webhook", followup_url=f"{saas.url}/hooks/followup")
    one = item(enricher, 2, "eve@example.org")
    saas.answers = [(503, {"Retry-After": "2"}, {})]
    with pytest.raises(TransientError):
        s.write([one])
    with warehouse.begin() as conn:  # as if the process died after the request left
        conn.execute(FollowUp.__table__.update().where(FollowUp.feedback_id == one.feedback_id)  # type: ignore[attr-defined]
                     .values(status="sending"))
    sink(warehouse, tmp_path, followup_target="webhook", followup_url=f"{saas.url}/hooks/followup").write([one])
    row = trail(warehouse, one.feedback_id)
    assert row.status == "unknown" and "not resent" in row.error and len(saas.requests) == 1


def test_settings_name_what_a_target_needs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FEEDBACK_FOLLOWUP_USER"):
        FollowupSettings(data_dir=tmp_path, followup_target="zendesk", followup_url="https://x.zendesk.com",
                         followup_token="t", contact_key=KEY.decode())
    with pytest.raises(ValueError, match="FEEDBACK_CONTACT_KEY"):
        FollowupSettings(data_dir=tmp_path, followup_target="webhook", followup_url="https://hooks.example")


def topic_values(p: Any, topic: str) -> list[bytes]:
    """Every record value on one of the pipeline's topics (read from the start, no group)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(p.prefix + topic, bootstrap_servers=p.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000, group_id=None)
    try:
        return [msg.value for msg in consumer]
    finally:
        consumer.close()


def test_consent_through_the_running_pipeline(saas: FakeSaaS, tmp_path: Path) -> None:
    """Form with consent -> raw -> processor -> enriched -> follow-up sink -> one Zendesk ticket."""
    import subprocess
    import sys

    import httpx

    from pipeline.broker import free_port
    from pipeline.supervisor import _die_with_parent
    from tests.integration.conftest import restartable_pipeline
    from tests.integration.harness import wait_for

    saas.answers = [(201, {}, ZENDESK_TICKET)]
    env = {"FEEDBACK_CONTACT_KEY": KEY.decode(), "FEEDBACK_FOLLOWUP_TARGET": "zendesk",
           "FEEDBACK_FOLLOWUP_URL": saas.url, "FEEDBACK_FOLLOWUP_USER": "agent@example.com",
           "FEEDBACK_FOLLOWUP_TOKEN": "tok", "FEEDBACK_FOLLOWUP_METRICS_PORT": str(free_port())}
    with restartable_pipeline(tmp_path, **env) as (p, _port):
        with open(tmp_path / "followups.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "pipeline", "sink", "followups"], env=p.env,
                                    stdout=log, stderr=log, preexec_fn=_die_with_parent)
        try:
            page = httpx.get(f"{p.url}/forms/default", timeout=30).text
            assert 'id="consent"' in page  # offered, since contacts can be sealed
            html = {"Accept": "text/html"}
            yes = httpx.post(f"{p.url}/forms/default", headers=html, timeout=30, data={
                "nps_score": "2", "comment": "Nobody answered my refund request", "email": "ann@example.org",
                "consent": "yes", "submission_id": str(uuid.uuid4())})
            assert yes.status_code == 200 and 'id="contact-promise"' in yes.text
            no = httpx.post(f"{p.url}/forms/default", headers=html, timeout=30, data={
                "nps_score": "1", "email": "bob@example.org", "submission_id": str(uuid.uuid4())})
            assert no.status_code == 200 and 'id="contact-promise"' not in no.text  # no consent, no promise

            def created() -> Any:
                with p.engine.connect() as conn:
                    return conn.execute(select(FollowUp).where(FollowUp.status == "created")).all()

            [row] = wait_for(created, 120, what="follow-up ticket")
            assert row.ticket_id == "35436" and row.reason == "detractor"
            assert len(saas.requests) == 1 and saas.requests[0]["body"]["ticket"]["requester"]["email"] == (
                "ann@example.org")
            with p.engine.connect() as conn:
                contacts = conn.execute(select(Contact)).all()
                [attributes] = conn.execute(select(Feedback.attributes).where(
                    Feedback.feedback_id == row.feedback_id)).scalars()
            # the warehouse sink kept the sealed address in contacts, and only there
            assert len(contacts) == 1 and contacts[0].feedback_id == row.feedback_id
            token = contacts[0].address_encrypted
            assert "ann@" not in token and Fernet(KEY).decrypt(token.encode()) == b"ann@example.org"
            assert attributes == {} and p.rows("CAST(attributes AS TEXT) LIKE '%contact%'") == []
            assert p.rows("CAST(attributes AS TEXT) LIKE '%ann@%' OR text LIKE '%ann@%'") == []
            # the topics carry the token, never the address
            raw, enriched = topic_values(p, "feedback.raw"), topic_values(p, "feedback.enriched")
            assert any(token.encode() in v for v in raw) and any(token.encode() in v for v in enriched)
            assert not any(b"ann@example.org" in v for v in raw + enriched)
            assert "ann@example.org" not in p.log("http") + p.log("sink")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def incident(engine: Engine, status: str, scope: tuple[str, str], started: datetime, examples: list[str]) -> uuid.UUID:
    """An incident as the alert sink writes it to the warehouse (the follow-up sink only reads it)."""
    incident_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(IncidentRow), [{
            "incident_id": incident_id, "kind": "signal", "status": status, "severity": "warning",
            "driver_scope_type": scope[0], "driver_scope_value": scope[1], "signals": ["negative_share"],
            "explained_share": 0.8, "started_at": started, "opened_at": started, "updated_at": started,
            "summary": "Negative share of delivery feedback 60% vs 20% usual", "examples": examples}])
    return incident_id


def test_incident_example_customers_get_one_followup(warehouse: Engine, saas: FakeSaaS, enricher: Enricher,
                                                     tmp_path: Path) -> None:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]  # unique addresses: an earlier test erased ann@example.org's customer
    ann, dan = f"ann-{run}@example.org", f"dan-{run}@example.org"
    words = f"The courier left my parcel in the rain {uuid.uuid4().hex[:6]}"  # unique per run: shared warehouse
    scope = ("channel", "form:" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10]))
    consenting = item(enricher, 8, ann, words, channel=scope[1])  # a passive: no detractor rule
    anonymous = item(enricher, 8, None, words, channel=scope[1])  # no consent: never contacted
    before = item(enricher, 8, "bob@example.org", words, channel=scope[1], event_time=now - timedelta(hours=3))
    elsewhere = item(enricher, 8, "cat@example.org", words)  # another channel than the driver's
    detractor = item(enricher, 1, dan, words, channel=scope[1])  # followed up as a detractor
    other = item(enricher, 8, "eve@example.org", f"Refund took weeks {uuid.uuid4().hex[:6]}", channel=scope[1])
    items = [consenting, anonymous, before, elsewhere, detractor, other]
    store(warehouse, tmp_path, items)
    opened = incident(warehouse, "open", scope, now - timedelta(hours=1), [words, "Something else entirely"])
    incident(warehouse, "resolved", scope, now - timedelta(hours=1), [other.text])  # resolved: no follow-ups
    s = sink(warehouse, tmp_path, followup_target="webhook", followup_url=f"{saas.url}/hooks/followup",
             followup_incidents=True, followup_poll_seconds=0)
    saas.answers = [(201, {}, {"id": "d-1"}), (429, {"Retry-After": "3"}, {}), (201, {}, {"id": "i-1"})]
    s.write(items)  # the detractor rule, from the topic
    assert trail(warehouse, detractor.feedback_id).reason == "detractor"
    s.tick()  # the incident rule: one row for the consenting example customer; the target says 429
    row = trail(warehouse, consenting.feedback_id)
    assert (row.status, row.reason, row.attempts) == ("pending", f"incident:{opened}", 1) and "429" in row.error
    s.tick()  # within Retry-After: nothing is sent
    assert len(saas.requests) == 2
    s._next_poll = 0.0  # Retry-After passed
    s.tick()
    s.tick()  # again: nothing new
    row = trail(warehouse, consenting.feedback_id)
    assert (row.status, row.ticket_id, row.attempts) == ("created", "i-1", 2)
    assert [r["body"]["email"] for r in saas.requests] == [dan, ann, ann]
    assert words in saas.requests[2]["body"]["body"] and "incident" in saas.requests[2]["body"]["subject"]
    assert saas.requests[2]["headers"]["Idempotency-Key"] == str(consenting.feedback_id)
    for untouched in (anonymous, before, elsewhere, other):
        assert trail(warehouse, untouched.feedback_id) is None
    assert trail(warehouse, detractor.feedback_id).reason == "detractor"  # one follow-up per item, the first
