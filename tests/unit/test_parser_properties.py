"""Property tests of the asynchronous parsers: whatever bytes or JSON arrive, nothing raises an
unexpected exception; unusable input ends as a skip, a dead letter or a typed RecordError (which the
callers turn into a DLQ record or a 4xx)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.backfill.mapping import Mapping, row_to_record
from connectors.email.parse import ParseOptions, parse_message
from connectors.tickets import freshdesk, generic, jira, zendesk
from connectors.tickets.model import Mapped, RecordFactory
from pipeline.errors import RecordError
from pipeline.schema import FeedbackRecord

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
KEY = b"property-test-key"

header_names = st.sampled_from(["From", "To", "Subject", "Message-ID", "Date", "In-Reply-To", "References",
                                "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted", "Precedence",
                                "MIME-Version", "X-Autoreply", "Delivered-To"])
header_values = st.one_of(st.text(max_size=60), st.sampled_from([
    "multipart/mixed; boundary=XYZ", "text/html; charset=koi8-r", "text/plain; charset=utf-99",
    "base64", "quoted-printable", "auto-replied", "bulk", "<a@b>", "Mon, 32 Foo 2026 25:61:00 +9999",
    "=?utf-8?b?broken?=", "=?iso-8859-1?q?caf=E9?="]))
messages = st.builds(
    lambda headers, body, tail: (
        "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8", "replace") + b"\r\n" + body + tail),
    st.lists(st.tuples(header_names, header_values.map(lambda v: v.replace("\n", " ").replace("\r", " "))),
             max_size=8),
    st.binary(max_size=400),
    st.sampled_from([b"", b"\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XYZ--", b"\r\n--XYZ"]),
)


@given(raw=st.one_of(st.binary(max_size=800), messages))
@PROPS
def test_any_email_bytes_become_a_record_a_skip_or_a_dead_letter(raw: bytes) -> None:
    outcome = parse_message(raw, ParseOptions(customer_key=KEY))
    assert outcome.kind in ("record", "skipped", "dead_letter")
    if outcome.kind == "record":
        assert isinstance(outcome.record, FeedbackRecord) and outcome.record.text.strip()
    else:
        assert outcome.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def ticket_like(keys: list[str]) -> st.SearchStrategy[Any]:
    """Objects shaped like a system's payload (its real keys) with arbitrary values."""
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys))


ZENDESK = ["type", "event", "detail", "id", "subject", "description", "status", "comment", "ticket", "body",
           "satisfaction_rating", "score", "requester_id", "group_id", "tags", "public", "author_id"]
FRESHDESK = ["freshdesk_webhook", "ticket_id", "ticket_subject", "ticket_description", "ticket_status",
             "triggered_event", "ticket_latest_public_comment", "ticket_satisfaction_rating"]
JIRA = ["webhookEvent", "issue", "comment", "timestamp", "fields", "key", "id", "user", "changelog"]
GENERIC = ["event", "ticket_id", "comment_id", "text", "subject", "status", "csat", "source_ref", "records"]


@given(payload=st.one_of(json_values, ticket_like(ZENDESK), ticket_like(FRESHDESK), ticket_like(JIRA),
                         ticket_like(GENERIC)),
       system=st.sampled_from([zendesk, freshdesk, jira, generic]))
@PROPS
def test_any_webhook_json_maps_or_is_refused_cleanly(payload: Any, system: Any) -> None:
    try:
        mapped = system.map_webhook(payload, RecordFactory(customer_key=KEY))
    except (RecordError, ValidationError):
        return  # the route answers 422 with the reason, and counts it
    assert isinstance(mapped, Mapped)
    assert all(isinstance(r, FeedbackRecord) for r in mapped.records)


MAPPING = Mapping(columns={"text": "comment", "nps": "score", "csat": "csat", "date": "date", "email": "email",
                           "id": "response_id", "product": "product", "tags": "tags"})
cell = st.one_of(st.none(), st.text(max_size=40), st.integers(-100, 100), st.floats(allow_nan=True),
                 st.sampled_from(["", "10", "7.0", "eleven", "2026-02-30", "31/12/2025 25:00", "a@b.c", "  "]))


@given(row=st.dictionaries(st.sampled_from(["comment", "score", "csat", "date", "email", "response_id",
                                            "product", "tags", "extra"]), cell, max_size=9))
@PROPS
def test_any_import_row_is_a_record_or_a_typed_rejection(row: dict[str, Any]) -> None:
    try:
        record = row_to_record(row, MAPPING, KEY, "survey")
    except RecordError as exc:
        assert exc.reason  # reported per row in the summary, dead-lettered with stage "import"
        return
    assert isinstance(record, FeedbackRecord)
    assert record.text or record.nps_score is not None or record.csat_score is not None  # words or a score
    if record.nps_score is not None:
        assert 0 <= record.nps_score <= 10
