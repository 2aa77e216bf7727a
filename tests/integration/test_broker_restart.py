"""The embedded broker dies under `feedback up` and comes back empty: the supervisor's rule handles it.

One `feedback up` (embedded Tansu broker, SQLite warehouse, one processor worker, the e-mail connector
on a private Dovecot) for the module; each test kills the broker child with SIGKILL. The rule
(pipeline/supervisor.py): the broker gate closes, every child but HTTP stops, the broker starts
again, the topics are provisioned, the gate opens, the children start again. The counts are exact:
every record a client got ``202`` for (or a mail the connector read) is stored, and stored once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import Engine, text

from pipeline.broker import free_port, port_open
from pipeline.state import SqlStateStore
from sinks.warehouse.db import make_engine
from tests.bench import email_samples as samples
from tests.bench.email_samples import wire
from tests.integration import dovecot as dv
from tests.integration.harness import wait_for

# The broker `feedback up` runs is the embedded Tansu one whatever --broker says: run in the tansu leg.
pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]

@dataclass
class Up:
    """A running `feedback up` and what the tests read from it."""

    proc: subprocess.Popen[bytes]
    url: str
    data: Path
    engine: Engine
    log_path: Path
    broker_port: int
    mailbox: str
    killed: list[int] = field(default_factory=list)

    def count(self, where: str) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(text(f"SELECT count(*) FROM feedback WHERE {where}")).scalar_one())
        except Exception:  # the table is not there yet
            return 0

    def refs(self, where: str) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT source_ref FROM feedback WHERE {where}"))]

    def broker(self) -> psutil.Process | None:
        return next((c for c in psutil.Process(self.proc.pid).children()
                     if "--storage-engine" in c.cmdline() and c.pid not in self.killed), None)

    def gate(self) -> str:
        try:
            return (self.data / "broker.gate").read_text()
        except OSError:
            return ""

    def kill_broker(self) -> None:
        """SIGKILL the broker child (its topics and records are gone) and wait until its port is closed."""
        child = self.broker()
        assert child is not None, "no broker child"
        self.killed.append(child.pid)
        child.kill()
        child.wait(10)
        wait_for(lambda: not port_open("127.0.0.1", self.broker_port), 10, what="the broker gone")

    def wait_restarted(self, starts: int) -> None:
        wait_for(lambda: self.gate() == f"open {starts}", 120, what=f"the gate open on broker start {starts}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, dovecot: dv.Dovecot) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("up")
    mailbox = dovecot.add_user("brokerrestart")
    http_port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update({
        "FEEDBACK_HTTP_PORT": str(http_port),
        "FEEDBACK_EMBEDDED_BROKER_PORT": str(broker_port),
        "FEEDBACK_PROCESSOR_WORKERS": "1",
        "FEEDBACK_TOPIC_PARTITIONS": "4",
        "FEEDBACK_PROCESSOR_METRICS_PORT": str(free_port()),
        "FEEDBACK_SINK_METRICS_PORT": str(free_port()),
        "FEEDBACK_ALERT_METRICS_PORT": str(free_port()),
        "FEEDBACK_IMAP_METRICS_PORT": str(free_port()),
        "FEEDBACK_PUBLISH_TIMEOUT_SECONDS": "3",
        "FEEDBACK_IMAP_HOST": "127.0.0.1", "FEEDBACK_IMAP_PORT": str(dovecot.imaps_port),
        "FEEDBACK_IMAP_SECURITY": "ssl", "FEEDBACK_IMAP_CA_FILE": str(dovecot.cafile),
        "FEEDBACK_IMAP_USER": mailbox, "FEEDBACK_IMAP_PASSWORD": dovecot.users[mailbox],
        "FEEDBACK_IMAP_POLL_SECONDS": "1", "FEEDBACK_IMAP_BACKOFF_MAX_SECONDS": "1",
    })
    log_path = workdir / "up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "up"], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    data = workdir / "data"
    p = Up(proc, f"http://127.0.0.1:{http_port}", data, make_engine(f"sqlite:///{data / 'warehouse.db'}"), log_path,
           broker_port, mailbox)
    try:
        wait_for(lambda: port_open("127.0.0.1", http_port) or proc.poll() is not None, 120, what="http service")
        assert proc.poll() is None, p.log()[-3000:]
        with httpx.Client(base_url=p.url, timeout=30) as client:
            ref = f"warmup-{uuid.uuid4().hex[:8]}"
            post_until_accepted(client, ref, time.monotonic() + 90)
            wait_for(lambda: p.count(f"source_ref = '{ref}'") == 1, 120, what="the warm-up row")
        yield p
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        p.engine.dispose()
    assert code == 0, p.log()[-3000:]


def post_until_accepted(client: httpx.Client, ref: str, deadline: float) -> list[int]:
    """What a well-behaved client does: on 503, wait Retry-After (capped at 1 s here) and send again.
    Every answer must be 202 or 503 with Retry-After: never a refused connection."""
    codes = []
    while time.monotonic() < deadline:
        r = client.post("/v1/events", json={"source_ref": ref, "text": f"{ref}: the courier was late"})
        codes.append(r.status_code)
        if r.status_code == 202:
            return codes
        assert r.status_code == 503 and r.json()["error"] == "broker_unavailable", r.text
        assert int(r.headers["retry-after"]) >= 1
        time.sleep(min(float(r.headers["retry-after"]), 1.0))
    raise AssertionError(f"{ref} never accepted: {codes[-5:]}")


def exactly_once(p: Up, run: str, expected: set[str]) -> None:
    """Every expected ref is stored, once, and nothing else of this run."""
    where = f"source_ref LIKE '{run}-%'"
    try:
        wait_for(lambda: p.count(where) >= len(expected), 180, what=f"{len(expected)} rows of run {run}")
    except AssertionError:
        missing = sorted(expected - set(p.refs(where)))
        raise AssertionError(f"{len(missing)} of {len(expected)} accepted records missing: {missing[:10]}") from None
    time.sleep(2)
    stored = p.refs(where)
    assert len(stored) == len(expected) and set(stored) == expected


def four_clients(url: str, prefix: str, seconds: float) -> set[str]:
    """Four clients post 75 records each at once, every one resent until accepted; the refs posted."""

    def client_posts(c: int) -> set[str]:
        refs = set()
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(75):
                post_until_accepted(client, f"{prefix}-{c}-{i}", time.monotonic() + seconds)
                refs.add(f"{prefix}-{c}-{i}")
        return refs

    with ThreadPoolExecutor(4) as pool:
        return set().union(*pool.map(client_posts, range(4)))


def test_http_answers_503_while_the_broker_restarts_and_every_accepted_record_is_stored_once(up: Up) -> None:
    p, run = up, uuid.uuid4().hex[:8]
    starts = int(p.gate().split()[1])
    expected: set[str] = set()
    with httpx.Client(base_url=p.url, timeout=30) as client:
        for i in range(100):
            ref = f"{run}-before-{i}"
            assert client.post("/v1/events", json={"source_ref": ref, "text": "ok"}).status_code == 202
            expected.add(ref)
        exactly_once(p, run, expected)

        p.kill_broker()
        # the HTTP service stays up: 503 + Retry-After (not a refused connection) until the broker is back
        outage_codes: list[int] = []
        for i in range(20):
            ref = f"{run}-outage-{i}"
            outage_codes += post_until_accepted(client, ref, time.monotonic() + 120)
            expected.add(ref)
        assert 503 in outage_codes, outage_codes
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="ready again")
    p.wait_restarted(starts + 1)

    expected |= four_clients(p.url, f"{run}-after", 90)
    assert len(expected) == 100 + 20 + 300
    exactly_once(p, run, expected)
    assert "broker exited; stopping the other children" in p.log()


def test_broker_restart_while_http_is_idle_then_concurrent_clients_lose_nothing(up: Up) -> None:
    """The broker dies while no request is in flight (the case that lost 9 of 300 before the rule), then
    four clients post at once, right away: whatever the service answered 202 is stored, once."""
    p, run = up, uuid.uuid4().hex[:8]
    starts = int(p.gate().split()[1])
    before = {c.pid: " ".join(c.cmdline()) for c in psutil.Process(p.proc.pid).children()}
    p.kill_broker()

    expected = four_clients(p.url, run, 120)
    assert p.gate() == f"open {starts + 1}"
    exactly_once(p, run, expected)
    # by rule: the HTTP service stayed up, every other child was started again after the broker
    now = {c.pid: " ".join(c.cmdline()) for c in psutil.Process(p.proc.pid).children()}
    assert [cmd for pid, cmd in before.items() if pid in now] == [cmd for cmd in before.values() if "serve-http" in cmd]
    assert len(now) == len(before)


def test_email_connector_resumes_from_its_saved_cursor_after_the_restart(up: Up, dovecot: dv.Dovecot) -> None:
    p, run = up, uuid.uuid4().hex[:8]
    starts = int(p.gate().split()[1])
    store = SqlStateStore(p.engine)

    def cursor() -> int:
        value = store.get(f"email:{p.mailbox}@127.0.0.1", "INBOX")
        return int(value["last_uid"]) if value else 0

    first = cursor()
    dovecot.append(p.mailbox, [wire(samples.plain(f"before the restart {i}",
                                                  msgid=f"<{run}-before-{i}@restart.example>")) for i in range(20)])
    where = f"source_ref LIKE '{run}-%@restart.example'"
    wait_for(lambda: p.count(where) == 20, 120, what="the mail before the restart")
    wait_for(lambda: cursor() >= first + 20, 30, what="the cursor past the mail before the restart")
    saved = cursor()

    p.kill_broker()
    dovecot.append(p.mailbox, [wire(samples.plain(f"after the restart {i}", msgid=f"<{run}-after-{i}@restart.example>"))
                               for i in range(20)])  # arrives while the broker is down
    p.wait_restarted(starts + 1)
    wait_for(lambda: p.count(where) >= 40, 180, what="the mail after the restart")
    time.sleep(2)
    assert p.count(where) == 40  # every mail once: none lost with the broker, none read twice into the table
    assert p.count(f"source_ref LIKE '{run}-before-%'") == 20
    wait_for(lambda: cursor() == saved + 20, 30, what="the cursor past the mail after the restart")
