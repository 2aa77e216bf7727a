"""The e-mail connector against a real Dovecot, the real broker and the warehouse (SQLite + PostgreSQL)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from connectors.email.checkpoint import CheckpointStore
from connectors.email.imap import ImapConnector
from connectors.email.parse import raw_ref
from connectors.email.settings import EmailSettings
from pipeline.broker import free_port, port_open
from pipeline.errors import ConfigError
from pipeline.publisher import Publisher
from pipeline.schema import DeadLetter, derive_feedback_id
from pipeline.state import SqlStateStore
from sinks.warehouse.db import make_engine, migrate
from tests.bench import email_samples as samples
from tests.bench.email_samples import wire
from tests.conftest import TEST_CUSTOMER_KEY, require
from tests.integration import dovecot as dv
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


class Connector:
    """``feedback connector email`` as a subprocess of the real CLI, wired to a test pipeline."""

    def __init__(self, pipeline: Pipeline, server: dv.Dovecot, user: str, **env: str) -> None:
        self.pipeline, self.user = pipeline, user
        self.metrics_port = free_port()
        self.log_path = pipeline.workdir / f"email-{user}.log"
        self.env = {**pipeline.env, "FEEDBACK_IMAP_HOST": "127.0.0.1", "FEEDBACK_IMAP_PORT": str(server.imaps_port),
                    "FEEDBACK_IMAP_SECURITY": "ssl", "FEEDBACK_IMAP_CA_FILE": str(server.cafile),
                    "FEEDBACK_IMAP_USER": user, "FEEDBACK_IMAP_PASSWORD": server.users[user],
                    "FEEDBACK_IMAP_POLL_SECONDS": "1", "FEEDBACK_IMAP_BACKOFF_MAX_SECONDS": "1",
                    "FEEDBACK_IMAP_METRICS_PORT": str(self.metrics_port), **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Connector:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline", "connector", "email"], env=self.env,
                                     stdout=log, stderr=log)
        wait_for(lambda: port_open("127.0.0.1", self.metrics_port) or self.proc.poll() is not None, 60,  # type: ignore[union-attr]
                 what="connector metrics")
        assert self.proc.poll() is None, self.log()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def metric(self, name: str, **labels: str) -> float:
        body = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def checkpoint(self, folder: str = "INBOX") -> tuple[int, int] | None:
        """The folder's checkpoint as the state store holds it (namespace email:<account>)."""
        value = SqlStateStore(self.pipeline.engine).get(f"email:{self.user}@127.0.0.1", folder)
        return (int(value["uidvalidity"]), int(value["last_uid"])) if value else None


def dlq_payloads(pipeline: Pipeline, wanted: set[bytes], timeout: float = 60) -> set[bytes]:
    """The e-mail dead letters' raw payloads among ``wanted`` (read until all are seen or timeout)."""
    consumer = KafkaConsumer(pipeline.prefix + "feedback.dlq", bootstrap_servers=pipeline.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)
    found: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and found != wanted:
            for msg in consumer:
                letter = DeadLetter.model_validate_json(msg.value)
                if letter.stage == "email" and letter.original_bytes() in wanted:
                    found.add(letter.original_bytes())
    finally:
        consumer.close()
    return found


def attrs(row: dict[str, Any]) -> dict[str, Any]:
    value = row["attributes"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _user(server: dv.Dovecot, prefix: str) -> str:
    return server.add_user(f"{prefix}{uuid.uuid4().hex[:6]}")


def test_mailbox_to_warehouse(pipeline: Pipeline, dovecot: dv.Dovecot) -> None:
    """Every kind of message over IMAPS: feedback rows, skips and garbage in the DLQ, a checkpoint."""
    user = _user(dovecot, "mix")
    dom = f"{user}.example"
    feedback = {
        "plain": samples.plain("The parcel arrived two weeks late.", msgid=f"<plain@{dom}>"),
        "html": samples.html_only("The checkout page keeps crashing.", msgid=f"<html@{dom}>"),
        "reply": samples.plain(samples.reply_body("Still no refund, this is terrible."), msgid=f"<reply@{dom}>"),
        "attachment": samples.with_attachment("The invoice is wrong, see attached.", msgid=f"<att@{dom}>"),
        "noid": samples.plain("A message without any Message-ID, but lovely service!", msgid=None),
    }
    big_text = "Summary: the product broke.\n" + ("Long complaint text goes on and on. " * 30 + "\n") * 10_000
    feedback["big"] = samples.plain(big_text, msgid=f"<big@{dom}>", cte="base64")
    skipped = {"auto_reply": samples.auto_reply(msgid=f"<auto@{dom}>"), "bounce": samples.bounce(msgid=f"<bnc@{dom}>")}
    garbled = b"<<binary garbage \xff\xfe\x80, not an e-mail at all>> " * 10
    raws = [wire(m) for m in feedback.values()] + [wire(m) for m in skipped.values()] + [garbled]
    dovecot.append(user, raws)
    connector = Connector(pipeline, dovecot, user).start()
    try:
        noid_ref = raw_ref(wire(feedback["noid"]))
        where = f"source_ref LIKE '%@{dom}' OR source_ref = '{noid_ref}'"
        wait_for(lambda: pipeline.count(where) == 6, 90, what="6 e-mail rows")
        rows = {r["source_ref"]: r for r in pipeline.rows(where)}
        # the channel is the mailbox read (its local part), never a header of the message (To: may name anyone)
        assert all(r["source"] == "email" and r["channel"] == user.split("@")[0].lower() for r in rows.values())
        assert rows[f"plain@{dom}"]["text"] == "The parcel arrived two weeks late."
        assert rows[f"html@{dom}"]["text"] == "The checkout page keeps crashing."
        assert rows[f"reply@{dom}"]["text"] == "Still no refund, this is terrible."
        assert rows[f"reply@{dom}"]["sentiment_label"] == "negative"
        assert attrs(rows[f"att@{dom}"])["attachments"] == 2
        assert attrs(rows[f"big@{dom}"])["truncated"] is True
        assert rows[noid_ref]["customer_ref"].startswith("c_")
        assert attrs(rows[f"plain@{dom}"])["imap_folder"] == "INBOX"
        ids = {derive_feedback_id("email", f"auto@{dom}"): "auto_reply",
               derive_feedback_id("email", f"bnc@{dom}"): "bounce"}
        letters = pipeline.dead_letters(lambda d: d.stage == "email" and d.feedback_id in ids, expect=2)
        assert {d.feedback_id: d.reason for d in letters} == ids
        assert {d.original_bytes() for d in letters} == {wire(m) for m in skipped.values()}
        assert all(d.payload_encoding == "base64" for d in letters)
        bad = pipeline.dead_letters(lambda d: d.stage == "email" and d.original_bytes() == garbled)
        assert bad and bad[0].reason == "not_an_email" and f"{user}@127.0.0.1/INBOX" in bad[0].detail
        wait_for(lambda: connector.checkpoint() is not None and connector.checkpoint()[1] == 9, 30,  # type: ignore[index]
                 what="checkpoint at the last UID")
        assert connector.checkpoint()[0] == dovecot.uidvalidity(user)  # type: ignore[index]
        assert connector.metric("feedback_rejected_total", source="email", reason="bounce") == 1
        assert connector.metric("feedback_email_messages_total", outcome="dead_lettered") == 1
        # IDLE: a message appended now arrives without waiting for a restart
        dovecot.append(user, [wire(samples.plain("Another one: the app is slow.", msgid=f"<later@{dom}>"))])
        wait_for(lambda: pipeline.count(f"source_ref = 'later@{dom}'") == 1, 60, what="message after IDLE")
    finally:
        connector.stop()
    assert connector.proc is not None and connector.proc.returncode == 0, connector.log()


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_kill_midway_restart_exactly_once_then_uidvalidity_reset(pipeline: Pipeline, dovecot: dv.Dovecot) -> None:
    user = _user(dovecot, "bulk")
    dom = f"{user}.example"
    good = [wire(samples.plain(f"Order {i}: the delivery was late again.", msgid=f"<m{i}@{dom}>"))
            for i in range(500)]
    bad = [wire(samples.auto_reply(msgid=f"<auto{i}@{dom}>")) for i in range(10)]
    bad += [f"garbled {i} {uuid.uuid4().hex} ".encode() + b"\xff\xfe no headers" for i in range(10)]
    mixed = good[:250] + bad + good[250:]
    with dovecot.client(user) as c:
        c.multiappend("INBOX", mixed)
    connector = Connector(pipeline, dovecot, user, FEEDBACK_IMAP_BATCH_SIZE="10").start()
    wait_for(lambda: (connector.checkpoint() or (0, 0))[1] >= 100, 60, interval=0.02, what="first batches")
    connector.stop(signal.SIGKILL)
    at_kill = connector.checkpoint()
    assert at_kill is not None and at_kill[1] < len(mixed), "the connector was not killed midway"
    connector.start()
    where = f"source_ref LIKE '%@{dom}'"
    try:
        wait_for(lambda: (connector.checkpoint() or (0, 0))[1] == len(mixed), 120, what="all UIDs checkpointed")
        wait_for(lambda: pipeline.count(where) == 500, 120, what="500 rows")
        assert dlq_payloads(pipeline, set(bad)) == set(bad)  # every skipped and garbled one, auditable
        # A server migration: new UIDVALIDITY, same messages -> re-read, nothing new in the warehouse
        written = pipeline.rows(f"source_ref = 'm0@{dom}'")[0]["written_at"]
        new_validity = dovecot.reset_uidvalidity(user)
        wait_for(lambda: (connector.checkpoint() or (0, 0)) == (new_validity, len(mixed)), 60,
                 what="checkpoint under the new UIDVALIDITY")
        assert connector.metric("feedback_email_uidvalidity_resets_total", folder="INBOX") == 1
        assert connector.metric("feedback_email_messages_total", outcome="duplicate") >= 500
        marker = wire(samples.plain("marker after the reset", msgid=f"<marker@{dom}>"))
        dovecot.append(user, [marker])
        wait_for(lambda: pipeline.count(f"source_ref = 'marker@{dom}'") == 1, 60, what="marker row")
        assert pipeline.count(where) == 501
        assert pipeline.rows(f"source_ref = 'm0@{dom}'")[0]["written_at"] == written  # not even re-written
    finally:
        connector.stop()


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_dovecot_stopped_and_started_while_polling(pipeline: Pipeline) -> None:
    require(dv.available(), "Dovecot")
    server = dv.Dovecot()
    server.start()
    try:
        user = server.add_user("restart")
        server.append(user, [wire(samples.plain("before the outage", msgid="<before@outage.example>"))])
        connector = Connector(pipeline, server, user).start()
        try:
            wait_for(lambda: pipeline.count("source_ref = 'before@outage.example'") == 1, 60, what="first row")
            server.stop()
            wait_for(lambda: connector.metric("feedback_email_connection_errors_total", kind="imap") >= 2, 60,
                     what="failed reconnects while the server is down")
            server.start()
            server.append(user, [wire(samples.plain("after the outage", msgid="<after@outage.example>"))])
            wait_for(lambda: pipeline.count("source_ref = 'after@outage.example'") == 1, 60, what="row after restart")
            assert pipeline.count("source_ref = 'before@outage.example'") == 1
            assert connector.proc is not None and connector.proc.poll() is None
        finally:
            connector.stop()
    finally:
        server.close()


# -- in-process: connection modes and after-processing actions ---------------------------------
def _settings(server: dv.Dovecot, user: str, tmp: Path, **kw: object) -> EmailSettings:
    base: dict[str, object] = {
        "imap_host": "127.0.0.1", "imap_port": server.imaps_port, "imap_security": "ssl",
        "imap_ca_file": server.cafile, "imap_user": user, "imap_password": server.users[user],
        "data_dir": tmp, "customer_hash_key": TEST_CUSTOMER_KEY, "warehouse_url": f"sqlite:///{tmp / 'state.db'}",
    }
    base.update(kw)
    return EmailSettings(**base)  # type: ignore[arg-type]


def test_starttls_plain_and_bad_certificate_or_password(dovecot: dv.Dovecot, tmp_path: Path) -> None:
    user = _user(dovecot, "conn")
    for security, port in (("starttls", dovecot.imap_port), ("none", dovecot.imap_port), ("ssl", dovecot.imaps_port)):
        client = ImapConnector(_settings(dovecot, user, tmp_path, imap_security=security, imap_port=port)).connect()
        assert client.folder_exists("INBOX")
        client.logout()
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # verification is on by default
        ImapConnector(_settings(dovecot, user, tmp_path, imap_ca_file=None)).connect()
    with pytest.raises(ConfigError, match="login"):
        ImapConnector(_settings(dovecot, user, tmp_path, imap_password="wrong")).connect()


@pytest.mark.parametrize("action", ["seen", "move"])
def test_after_processing_action(dovecot: dv.Dovecot, kafka_bootstrap: str, tmp_path: Path, action: str) -> None:
    user = _user(dovecot, action)
    dovecot.append(user, [wire(samples.plain(f"message {i}", msgid=f"<a{i}@{user}>")) for i in range(3)])
    settings = _settings(dovecot, user, tmp_path, kafka_bootstrap=kafka_bootstrap,
                         topic_prefix=f"t{uuid.uuid4().hex[:8]}.", imap_after_processing=action,
                         imap_move_to="Processed" if action == "move" else None)
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = CheckpointStore(engine)
    publisher = Publisher(settings)
    connector = ImapConnector(settings, publisher=publisher, store=store)
    connector._dependencies()
    client = connector.connect()
    try:
        connector._check_folders(client)
        summary = connector.sync_folder(client, "INBOX")
        assert (summary.read, summary.published) == (3, 3)
        if action == "seen":
            client.select_folder("INBOX", readonly=True)
            assert len(client.search(["SEEN"])) == 3
        else:
            client.select_folder("INBOX", readonly=True)
            assert client.search("ALL") == []
            client.select_folder("Processed", readonly=True)
            assert len(client.search("ALL")) == 3
        cp = store.get(settings.account, "INBOX")
        assert cp is not None and cp.last_uid == 3
        assert connector.sync_folder(client, "INBOX").read == 0  # nothing above the checkpoint
    finally:
        client.logout()
        publisher.close()


def test_xoauth2_token_file_is_read_at_every_login(dovecot: dv.Dovecot, tmp_path: Path) -> None:
    user = _user(dovecot, "oauth")
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    dovecot.tokens["first-token"] = user
    settings = _settings(dovecot, user, tmp_path, imap_password=None, imap_oauth2_token_file=token_file)
    connector = ImapConnector(settings)
    client = connector.connect()
    assert client.folder_exists("INBOX")
    client.logout()
    token_file.write_text("rotated-token")  # a refresher replaced it: the old one is no longer valid
    del dovecot.tokens["first-token"]
    dovecot.tokens["rotated-token"] = user
    connector.connect().logout()
    token_file.write_text("revoked")
    with pytest.raises(ConfigError, match="login"):
        connector.connect()
