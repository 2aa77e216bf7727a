"""No /v1/events client can impersonate another source or client, through the running pipeline.

The reported attack: a stored form complaint (CSAT 1) was rewritten through ``/v1/events`` as "Great
service, thanks!" with CSAT 5, by posting ``source: "webform"`` and the form's ``source_ref``. Here the
HTTP service runs with named and unnamed tokens on PostgreSQL: a token may send only ``event`` or the
sources it is allowed; a named token's references live in its own namespace; ticket state and
``origin`` cannot be sent; and when two clients do hit the same id (unnamed tokens share a namespace)
the warehouse keeps the row of the client that wrote it and dead-letters the other's update.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipeline.broker import port_open
from pipeline.schema import derive_feedback_id
from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

CRM = "tok-crm-5f0c1d9e"  # named "crm", may also send source webform
HELPDESK = "tok-helpdesk-a81b"  # named "helpdesk"
LEGACY_A = "tok-legacy-aaaa-0001"
LEGACY_B = "tok-legacy-bbbb-0002"


class TokenPipeline(Pipeline):
    """The pipeline with ``FEEDBACK_API_TOKENS`` set: the warm-up record goes with a token."""

    def start_all(self) -> None:
        for name in ("sink", "processor", "http"):
            self.start(name)
        wait_for(lambda: port_open("127.0.0.1", self.http_port), 90, what="http service")
        ref = f"warmup-{uuid.uuid4()}"
        r = post(self, LEGACY_A, {"source_ref": ref, "text": "warm up"})
        assert r.status_code == 202, r.text
        wait_for(lambda: self.count_or_zero(f"source_ref = '{ref}'") == 1, 120, what="warm-up row")


def post(p: Pipeline, token: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{p.url}/v1/events", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def pg_pipeline(kafka_bootstrap: str, pg_schema_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    engine = make_engine(pg_schema_url)
    p = TokenPipeline(kafka_bootstrap, pg_schema_url, engine, tmp_path_factory.mktemp("trust"))
    p.env["FEEDBACK_API_TOKENS"] = f"crm:{CRM}:webform,helpdesk:{HELPDESK},{LEGACY_A},{LEGACY_B}"
    p.start_all()
    try:
        yield p
    finally:
        p.stop()
        engine.dispose()


def complaint(p: Pipeline) -> tuple[str, str]:
    """A form complaint with CSAT 1, stored; returns (source_ref, feedback_id)."""
    sid = str(uuid.uuid4())
    r = httpx.post(f"{p.url}/forms/checkout", json={"submission_id": sid, "nps_score": 0, "csat_score": 1,
                                                      "comment": "Nobody called me back about my refund"},
                   timeout=30)
    assert r.status_code == 202, r.text
    ref = f"checkout:{sid}"
    wait_for(lambda: p.count(f"source_ref = '{ref}'") == 1, 120, what="the complaint stored")
    return ref, str(derive_feedback_id("webform", ref))


def stored(p: Pipeline, ref: str) -> dict[str, Any]:
    rows = p.rows("source_ref = :r", {"r": ref})
    assert len(rows) == 1
    return rows[0]


def test_the_reported_attack_cannot_rewrite_a_form_complaint(pg_pipeline: Pipeline) -> None:
    p = pg_pipeline
    ref, fid = complaint(p)
    forged = {"source": "webform", "source_ref": ref, "text": "Great service, thanks!", "csat_score": 5}
    for token in (LEGACY_A, HELPDESK):  # not allowed to speak for the web form
        r = post(p, token, forged)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "source_not_allowed"
    # a token allowed the webform source writes in its own namespace: a new record, not the complaint
    r = post(p, CRM, forged)
    assert r.status_code == 202, r.text
    assert r.json()["feedback_ids"] != [fid]
    wait_for(lambda: p.count(f"source_ref = 'crm:{ref}'") == 1, 120, what="crm's own record")
    row = stored(p, ref)
    assert (row["text"], row["csat_score"], row["origin"]) == ("Nobody called me back about my refund", 1, "webform")
    assert stored(p, f"crm:{ref}")["origin"] == "event:crm"


def test_two_clients_cannot_overwrite_each_other(pg_pipeline: Pipeline) -> None:
    p = pg_pipeline
    ref = f"order-{uuid.uuid4().hex[:8]}"
    # named tokens: the same source_ref is two records
    assert post(p, CRM, {"source_ref": ref, "text": "CRM: the refund is late", "csat_score": 2}).status_code == 202
    assert post(p, HELPDESK, {"source_ref": ref, "text": "Helpdesk: all good", "csat_score": 5}).status_code == 202
    wait_for(lambda: p.count(f"source_ref IN ('crm:{ref}', 'helpdesk:{ref}')") == 2, 120, what="both records")
    assert stored(p, f"crm:{ref}")["text"] == "CRM: the refund is late"
    # unnamed tokens share one namespace: the second client's update is refused and dead-lettered
    assert post(p, LEGACY_A, {"source_ref": ref, "text": "A: parcel damaged", "csat_score": 1}).status_code == 202
    wait_for(lambda: p.count(f"source_ref = '{ref}'") == 1, 120, what="A's record")
    r = post(p, LEGACY_B, {"source_ref": ref, "text": "B: Great service, thanks!", "csat_score": 5})
    assert r.status_code == 202, r.text
    letters = p.dead_letters(lambda d: d.reason == "origin_mismatch" and ref in d.payload, timeout=120)
    assert len(letters) == 1 and letters[0].stage == "sink"
    assert "B: Great service" in letters[0].payload
    row = stored(p, ref)
    assert (row["text"], row["csat_score"]) == ("A: parcel damaged", 1)
    assert p.metric("sink", "feedback_warehouse_rejected_total", reason="origin_mismatch") >= 1
    # the same client still updates its own record
    assert post(p, LEGACY_A, {"source_ref": ref, "text": "A: parcel damaged, box crushed",
                              "csat_score": 1}).status_code == 202
    wait_for(lambda: stored(p, ref)["text"] == "A: parcel damaged, box crushed", 120, what="A's own update")


def test_ticket_state_and_origin_come_only_from_the_pipeline(pg_pipeline: Pipeline) -> None:
    p = pg_pipeline
    pinned = {"source_ref": f"z-{uuid.uuid4().hex[:6]}", "text": "state", "thread_ref": "zendesk:ticket:1",
              "attributes": {"ticket_event": "state", "ticket_status": "solved",
                             "ticket_updated_at": "2999-01-01T00:00:00+00:00"}}
    r = post(p, CRM, pinned)
    assert r.status_code == 403 and r.json()["error"] == "ticket_state_not_allowed", r.text
    r = post(p, CRM, {"source_ref": "x", "text": "t", "origin": "webform"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["origin"], r.text
    r = post(p, None, {"source_ref": "x", "text": "t"})
    assert r.status_code == 401
