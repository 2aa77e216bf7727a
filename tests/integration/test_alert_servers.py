"""Real receivers for the alert channels - a local HTTP webhook receiver and an SMTP server (aiosmtpd,
STARTTLS + AUTH with a throw-away certificate) - and the channels tested against them.

The helpers here are reused by the other alert tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.broker import free_port
from pipeline.signal_config import AlertSettings
from pipeline.signal_schema import Alert, Incident
from sinks.alerts.channels import DeliveryError, EmailChannel, SlackChannel, WebhookChannel

pytestmark = pytest.mark.integration


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    code: int = 0  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server recording every POST; ``status`` decides each answer (default 200)."""

    port: int = field(default_factory=free_port)
    status: Callable[[Received, int], int] = lambda _r, _n: 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                rec = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer.lock:
                    outer.requests.append(rec)
                    code = outer.status(rec, sum(1 for r in outer.requests if r.path == rec.path))
                    rec.code = code
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mailbox:
    """An aiosmtpd server that requires STARTTLS and AUTH, and keeps every message it accepts."""

    ca: Path  # what clients trust
    server_pem: Path  # the server's key and certificate chain
    user: str = "alerts"
    password: str = "s3cret"
    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def start(self) -> Mailbox:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> Any:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == outer.user
                  and data.password.decode() == outer.password)
            if ok:
                outer.logins.append(outer.user)
            return AuthResult(success=ok)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_pem)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, auth_required=True, authenticator=authenticator)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"alert_smtp_host": "127.0.0.1", "alert_smtp_port": self.port, "alert_smtp_security": "starttls",
                "alert_smtp_username": self.user, "alert_smtp_password": self.password,
                "alert_smtp_cafile": self.ca, "alert_smtp_to": ["ops@example.com"],
                "alert_smtp_from": "feedback@example.com", **extra}


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away CA (its certificate is what the client trusts) and a server certificate for 127.0.0.1.

    Returns (CA certificate, server certificate chain + key) as PEM files.
    """
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_path, server_path = directory / "smtp-ca.pem", directory / "smtp-server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return ca_path, server_path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(*make_cert(tmp_path)).start()
    yield box
    box.stop()


def sample_alert(event: str = "opened") -> Alert:
    start = datetime(2026, 3, 10, tzinfo=UTC)
    return Alert(alert_id=uuid.uuid4(), signal="negative_share", scope_type="category", scope_value="delivery",
                 status="open", severity="warning", window_start=start, window_end=start + timedelta(hours=1),
                 observed=0.57, expected=0.18, opened_at=start + timedelta(hours=1, minutes=15),
                 summary="Share of negative feedback in category delivery rose from 18% to 57% (n=212) in the "
                         "window starting 2026-03-10 00:00 UTC <now>",
                 event=event, event_id=uuid.uuid4(), sample_size=212, z_score=5.1)


def test_slack_payload_is_an_incoming_webhook_message(receiver: Receiver) -> None:
    alert = sample_alert()
    SlackChannel(receiver.url("/slack"), 5.0, link="https://grafana.example/d/feedback").deliver(alert)
    [req] = receiver.at("/slack")
    body = req.json()
    assert body["text"].startswith("[opened] WARNING negative_share category=delivery: Share of negative")
    section = body["blocks"][0]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "&lt;now&gt;" in section["text"]["text"]  # Slack markup is escaped
    assert req.headers["idempotency-key"] == str(alert.event_id)


def test_webhook_is_signed_and_carries_the_event_id(receiver: Receiver) -> None:
    alert = sample_alert("resolved")
    WebhookChannel(receiver.url("/hook"), 5.0, secret=b"k3y").deliver(alert)
    [req] = receiver.at("/hook")
    expected = "sha256=" + hmac.new(b"k3y", req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-feedback-signature"] == expected
    assert req.headers["idempotency-key"] == req.json()["event_id"] == str(alert.event_id)
    assert req.json()["event"] == "resolved" and req.json()["alert"]["scope_value"] == "delivery"
    assert Alert.model_validate(req.json()["alert"]) == alert


def test_webhook_errors_are_classified(receiver: Receiver) -> None:
    receiver.status = lambda r, _n: 500 if r.path == "/down" else 400
    with pytest.raises(DeliveryError) as down:
        WebhookChannel(receiver.url("/down"), 5.0).deliver(sample_alert())
    assert not down.value.permanent
    with pytest.raises(DeliveryError) as bad:
        WebhookChannel(receiver.url("/bad"), 5.0).deliver(sample_alert())
    assert bad.value.permanent
    with pytest.raises(DeliveryError) as refused:
        WebhookChannel(f"http://127.0.0.1:{free_port()}/", 2.0).deliver(sample_alert())
    assert not refused.value.permanent


def test_email_over_starttls_with_login(mailbox: Mailbox) -> None:
    alert = sample_alert()
    EmailChannel(AlertSettings(**mailbox.settings())).deliver(alert)
    [msg] = mailbox.messages
    assert mailbox.logins == ["alerts"]
    assert msg["Subject"] == "[feedback] [opened] WARNING negative_share category=delivery"
    assert msg["Message-ID"] == f"<{alert.event_id}@feedback-pipeline>"
    assert msg["To"] == "ops@example.com"
    assert "rose from 18% to 57%" in msg.get_payload()
    with pytest.raises(DeliveryError) as wrong:
        EmailChannel(AlertSettings(**mailbox.settings(alert_smtp_password="wrong", alert_smtp_timeout_seconds=2))
                     ).deliver(alert)
    assert not wrong.value.permanent  # a setting to fix: the mail waits, it is not dropped


def sample_incident(event: str = "opened") -> Incident:
    start = datetime(2026, 3, 10, tzinfo=UTC)
    return Incident(incident_id=uuid.uuid4(), status="open", severity="warning", driver_scope_type="category",
                    driver_scope_value="delivery", signals=["negative_share"], explained_share=0.85,
                    started_at=start, opened_at=start + timedelta(hours=3), observed=0.58, expected=0.21,
                    sample_size=1240, alerts=[uuid.uuid4(), uuid.uuid4()],
                    summary="Negative share of delivery feedback 58% vs 21% usual, 1,240 responses since Tue 10 Mar "
                            "00:00 UTC; delivery explains 85% of the rise in negative share overall.",
                    examples=["The parcel arrived <late> & crushed.", "Courier never came."], event=event,
                    event_id=uuid.uuid4())


def test_incidents_reach_people_in_words_with_examples(receiver: Receiver, mailbox: Mailbox) -> None:
    inc = sample_incident()
    SlackChannel(receiver.url("/slack"), 5.0).deliver_incident(inc)
    [req] = receiver.at("/slack")
    body = req.json()
    assert body["text"].startswith("[opened] WARNING incident category=delivery: Negative share of delivery")
    said = body["blocks"][1]["text"]["text"]
    assert "What customers said" in said and "&lt;late&gt; &amp; crushed" in said  # escaped
    assert f"feedback alerts ack {inc.incident_id}" in str(body["blocks"])
    assert req.headers["idempotency-key"] == str(inc.event_id)

    WebhookChannel(receiver.url("/hook"), 5.0, secret=b"k3y").deliver_incident(inc)
    [hook] = receiver.at("/hook")
    assert hook.headers["x-feedback-signature"] == "sha256=" + hmac.new(b"k3y", hook.body, hashlib.sha256).hexdigest()
    assert Incident.model_validate(hook.json()["incident"]) == inc and hook.json()["event"] == "opened"

    EmailChannel(AlertSettings(**mailbox.settings())).deliver_incident(inc)
    [msg] = mailbox.messages
    assert msg["Subject"] == "[feedback] [opened] WARNING incident category=delivery"
    assert msg["X-Feedback-Incident-Id"] == str(inc.incident_id)
    text = msg.get_payload()
    assert "58% vs 21% usual, 1,240 responses" in text and "Courier never came." in text
    assert "85% of the rise overall" in text


def test_alerts_test_sends_one_message_through_the_named_channel(receiver: Receiver) -> None:
    from typer.testing import CliRunner

    from pipeline import cli

    env = {"FEEDBACK_ALERT_WEBHOOK_URL": receiver.url("/hook")}
    done = CliRunner().invoke(cli.app, ["alerts", "test", "--channel", "webhook"], env=env)
    assert done.exit_code == 0 and "webhook: delivered" in done.stdout, done.output
    [req] = receiver.at("/hook")
    assert req.json()["event"] == "test" and "Test message" in req.json()["incident"]["summary"]
    receiver.status = lambda r, _n: 400
    refused = CliRunner().invoke(cli.app, ["alerts", "test", "--channel", "webhook"], env=env)
    assert refused.exit_code == 1 and "refused" in refused.output
    missing = CliRunner().invoke(cli.app, ["alerts", "test", "--channel", "email"], env=env)
    assert missing.exit_code != 0 and "not configured" in str(missing.exception)
