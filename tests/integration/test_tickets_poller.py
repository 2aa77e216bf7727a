"""``feedback connector zendesk`` against a local HTTP server serving Zendesk's documented shapes.

The server pages the cursor-based incremental ticket export (with users/groups/metric_sets
sideloads), serves each ticket's comments with cursor pagination, answers one ``429`` with
``Retry-After`` and one ``500``, and ends the cursor. The poller runs as a real subprocess of the
CLI into the test pipeline's broker, so its records land in the warehouse.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from connectors.tickets.poller import state_namespace
from pipeline.broker import free_port
from pipeline.config import ZendeskSettings
from pipeline.state import SqlStateStore
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

EMAIL, TOKEN = "agent@example.com", "zd-api-token"
PAGES, PER_PAGE = 6, 3


class FakeZendesk:
    """A Zendesk account in memory behind a real HTTP server on a free port."""

    def __init__(self, base_id: int) -> None:
        self.base_id = base_id
        self.requests: list[tuple[float, str, dict[str, list[str]], int]] = []
        self.faults: dict[str, list[int]] = {}  # cursor -> statuses to answer first (429/500)
        self.hold = threading.Event()
        self.hold.set()
        self.hold_ticket: int | None = None
        self.held = threading.Event()
        self.tickets = [self._ticket(p, i) for p in range(PAGES) for i in range(PER_PAGE)]
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def _ticket(self, page: int, i: int) -> dict[str, Any]:
        tid = self.base_id + page * 10 + i
        rating = [{"score": "offered"}, {"id": tid * 10, "score": "good", "comment": "Quick and kind"},
                  {"id": tid * 10, "score": "bad", "comment": ""}][i % 3]
        return {
            "url": f"https://acme.zendesk.com/api/v2/tickets/{tid}.json", "id": tid, "external_id": None,
            "via": {"channel": "email"}, "created_at": "2025-05-01T08:00:00Z",
            "updated_at": f"2025-05-0{1 + page}T09:00:0{i}Z", "generated_timestamp": 1746090000 + page * 100 + i,
            "type": "incident", "subject": f"Order {tid} problem", "raw_subject": f"Order {tid} problem",
            "description": f"My order {tid} arrived damaged and late.", "priority": "normal",
            "status": "solved" if i == 1 else "open", "recipient": None, "requester_id": 501, "submitter_id": 501,
            "assignee_id": 900, "organization_id": None, "group_id": 77, "collaborator_ids": [],
            "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None, "problem_id": None,
            "has_incidents": False, "is_public": True, "due_at": None, "tags": ["shipping", f"p{page}"],
            "custom_fields": [], "satisfaction_rating": rating, "sharing_agreement_ids": [], "fields": [],
            "followup_ids": [], "ticket_form_id": 1, "brand_id": 1, "allow_channelback": False,
            "allow_attachments": True, "from_messaging_channel": False,
        }

    def comments(self, tid: int) -> list[dict[str, Any]]:
        def c(n: int, author: int, body: str, public: bool = True) -> dict[str, Any]:
            return {"id": tid * 100 + n, "type": "Comment", "author_id": author, "body": body,
                    "html_body": f"<p>{body}</p>", "plain_body": body, "public": public, "attachments": [],
                    "audit_id": tid * 1000 + n, "via": {"channel": "web"},
                    "created_at": f"2025-05-01T{8 + n:02d}:00:00Z", "metadata": {}}
        return [c(0, 501, f"My order {tid} arrived damaged and late."), c(1, 900, "Refund approved", public=False),
                c(2, 900, "Sorry! We are on it."), c(3, 501, "Thanks, but it took far too long.")]

    def expected_refs(self) -> set[str]:
        refs = set()
        for t in self.tickets:
            key = f"zendesk:ticket:{t['id']}"
            refs |= {key, f"{key}:comment:{t['id'] * 100 + 3}"}
            if t["satisfaction_rating"].get("id"):
                refs.add(f"{key}:rating:{t['id'] * 10}")
        return refs

    def export_requests(self) -> list[dict[str, list[str]]]:
        return [q for _t, path, q, _s in self.requests if path.endswith("/incremental/tickets/cursor.json")]

    def _page(self, cursor: str | None) -> dict[str, Any]:
        index = int(cursor[1:]) if cursor else 0
        tickets = self.tickets[index * PER_PAGE:(index + 1) * PER_PAGE]
        after = f"c{min(index + 1, PAGES)}"
        return {"tickets": tickets, "after_cursor": after,
                "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={after}",
                "before_cursor": cursor, "before_url": None, "end_of_stream": index + 1 >= PAGES,
                "users": [{"id": 501, "email": "Customer@Example.com", "role": "end-user"},
                          {"id": 900, "email": "agent@example.com", "role": "agent"}],
                "groups": [{"id": 77, "name": "Shipping"}],
                "metric_sets": [{"ticket_id": t["id"], "solved_at": "2025-05-02T10:00:00Z"}
                                for t in tickets if t["status"] == "solved"]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        expected_auth = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                fake.requests.append((time.monotonic(), urlsplit(self.path).path,
                                      parse_qs(urlsplit(self.path).query), status))
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the poller was killed meanwhile

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if self.headers.get("Authorization") != expected_auth:
                    return self._send(401, {"error": "Couldn't authenticate you"})
                if url.path == "/api/v2/incremental/tickets/cursor.json":
                    cursor = query.get("cursor", [None])[0]
                    faults = fake.faults.get(cursor or "start", [])
                    if faults:
                        status = faults.pop(0)
                        if status == 429:
                            return self._send(429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "1"})
                        return self._send(status, {"error": "InternalError"})
                    return self._send(200, fake._page(cursor))
                if url.path.startswith("/api/v2/tickets/") and url.path.endswith("/comments.json"):
                    tid = int(url.path.split("/")[4])
                    if tid == fake.hold_ticket:
                        fake.held.set()
                        fake.hold.wait(60)
                    comments = fake.comments(tid)
                    second = query.get("page[after]", [None])[0] == "p2"
                    part = comments[2:] if second else comments[:2]
                    return self._send(200, {
                        "comments": part, "users": [{"id": 501, "role": "end-user"}, {"id": 900, "role": "agent"}],
                        "meta": {"has_more": not second, "after_cursor": None if second else "p2",
                                 "before_cursor": None},
                        "links": {"next": None if second else
                                  f"{fake.url}/api/v2/tickets/{tid}/comments.json?page[after]=p2&page[size]=100",
                                  "prev": None}})
                return self._send(404, {"error": "InvalidEndpoint"})

        return Handler


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk(random.randint(10**8, 9 * 10**8) * 100)
    yield fake
    fake.close()


def poller(p: Pipeline, fake: FakeZendesk, checkpoint: Path, *args: str, token: str = TOKEN,
           log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**p.env, "FEEDBACK_ZENDESK_BASE_URL": fake.url, "FEEDBACK_ZENDESK_EMAIL": EMAIL,
           "FEEDBACK_ZENDESK_API_TOKEN": token, "FEEDBACK_ZENDESK_CHECKPOINT_FILE": str(checkpoint),
           "FEEDBACK_ZENDESK_METRICS_PORT": "0", "FEEDBACK_ZENDESK_POLL_INTERVAL_SECONDS": "1",
           "FEEDBACK_ZENDESK_MAX_BACKOFF_SECONDS": "2"}
    out = open(log, "ab") if log else subprocess.PIPE  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "pipeline", "connector", "zendesk", *args], env=env,
                            stdout=out, stderr=subprocess.STDOUT)


def saved_cursor(p: Pipeline, fake: FakeZendesk) -> str | None:
    """The poller's cursor as the state store holds it (saved only after the broker's acks)."""
    state = SqlStateStore(p.engine).get(state_namespace(ZendeskSettings(zendesk_base_url=fake.url)), "cursor")
    return state["cursor"] if state else None


def forget_cursor(p: Pipeline, fake: FakeZendesk) -> None:
    SqlStateStore(p.engine).delete(state_namespace(ZendeskSettings(zendesk_base_url=fake.url)))


def rows_of(p: Pipeline, fake: FakeZendesk) -> list[str]:
    with p.engine.connect() as conn:
        result = conn.execute(text("SELECT source_ref FROM feedback WHERE thread_ref LIKE :k"),
                              {"k": f"zendesk:ticket:{str(fake.base_id)[:9]}%"})
        return [r[0] for r in result]


def test_poller_killed_midway_and_restarted_loses_nothing_and_duplicates_nothing(
        pipeline: Pipeline, zendesk: FakeZendesk, tmp_path: Path) -> None:
    checkpoint, log = tmp_path / "zendesk.json", tmp_path / "poller.log"
    zendesk.faults = {"c1": [429], "c2": [500]}
    zendesk.hold_ticket = zendesk.tickets[4 * PER_PAGE + 1]["id"]  # the 2nd ticket of page 4
    zendesk.hold.clear()
    proc = poller(pipeline, zendesk, checkpoint, log=log)
    try:
        wait_for(zendesk.held.is_set, 60, what="the poller to reach page 4")
        assert saved_cursor(pipeline, zendesk) == "c4"  # pages 0-3 were acked by the broker, page 4 is in flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        zendesk.hold.set()
    served = len(zendesk.export_requests())
    rerun = poller(pipeline, zendesk, checkpoint, "--once", log=log)
    assert rerun.wait(60) == 0, log.read_text()[-3000:]
    # the restart resumed from the checkpoint, not from the start
    assert zendesk.export_requests()[served].get("cursor") == ["c4"]
    assert saved_cursor(pipeline, zendesk) == f"c{PAGES}"
    expected = zendesk.expected_refs()
    wait_for(lambda: set(rows_of(pipeline, zendesk)) >= expected, 90, what="every ticket item in the warehouse")
    refs = rows_of(pipeline, zendesk)
    assert len(refs) == len(set(refs)) == len(expected) and set(refs) == expected
    # 429 honoured (Retry-After: 1) and the 500 retried
    times = {(tuple(q.get("cursor", [])), s): t for t, path, q, s in zendesk.requests if "incremental" in path}
    assert times[(("c1",), 200)] - times[(("c1",), 429)] >= 0.95
    assert (("c2",), 500) in times and (("c2",), 200) in times
    # the ticket state: solved tickets with CSAT from the rating, groups from the sideload
    with pipeline.engine.connect() as conn:
        solved = conn.execute(text("SELECT ticket_id, group_name, csat_score FROM tickets WHERE is_solved "
                                   "AND ticket_id LIKE :k ORDER BY ticket_id"),
                              {"k": f"{str(zendesk.base_id)[:9]}%"}).all()
    assert len(solved) == PAGES and all(g == "Shipping" and c == 5 for _t, g, c in solved)
    # a crash between the broker's ack and the checkpoint means pages are read and sent again (worst
    # case: all of them); the deterministic ids make that harmless: the processor drops the exact
    # re-deliveries it remembers, the warehouse upserts whatever gets through.
    duplicates = pipeline.metric("processor", "feedback_duplicates_total")
    forget_cursor(pipeline, zendesk)
    again = poller(pipeline, zendesk, checkpoint, "--once", log=log)
    assert again.wait(60) == 0, log.read_text()[-3000:]
    wait_for(lambda: pipeline.metric("processor", "feedback_duplicates_total") - duplicates >= len(expected), 60,
             what="the re-sent records through the processor")
    refs = rows_of(pipeline, zendesk)
    assert len(refs) == len(set(refs)) == len(expected)


def test_rejected_credentials_exit_with_a_configuration_error(
        pipeline: Pipeline, zendesk: FakeZendesk, tmp_path: Path) -> None:
    proc = poller(pipeline, zendesk, tmp_path / "cp.json", "--once", token="wrong")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"Zendesk refused the credentials (401)" in out and b"FEEDBACK_ZENDESK_API_TOKEN" in out
    assert not (tmp_path / "cp.json").exists()
