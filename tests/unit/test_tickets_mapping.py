"""Ticket payloads (written from each system's public documentation) -> ticket records.

The payload builders here are shared with tests/integration/test_tickets_webhooks.py.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.tickets import freshdesk, generic, jira, zendesk
from connectors.tickets.model import RecordFactory, html_to_text, parse_time
from pipeline.errors import RecordError
from pipeline.schema import derive_feedback_id

KEY = b"unit-test-key"


# -- payload builders ----------------------------------------------------------------------------------
def zendesk_event(kind: str, ticket_id: int | str, *, comment: dict[str, Any] | None = None,
                  event: dict[str, Any] | None = None, **detail: Any) -> dict[str, Any]:
    """A Zendesk webhook event-subscription payload (``zen:event-type:ticket.*``)."""
    base = {
        "id": str(ticket_id), "subject": "Cannot log in to the mobile app", "status": "OPEN", "priority": "HIGH",
        "type": "INCIDENT", "description": "Since the update the app rejects my password. Very frustrating.",
        "requester_id": "8447388090494", "submitter_id": "8447388090494", "assignee_id": None,
        "group_id": "360001234567", "organization_id": None, "brand_id": "360000000001", "form_id": "1",
        "tags": ["mobile", "login"], "is_public": True, "external_id": None, "custom_status": "1",
        "created_at": "2025-01-08T10:12:07Z", "updated_at": "2025-01-08T14:25:30Z", "via": {"channel": "web"},
        "actor_id": "8447388090494",
    }
    base.update(detail)
    body: dict[str, Any] = {
        "account_id": 22129848, "detail": base, "event": event or {},
        "id": f"d4f5c389-8f4a-4c2e-a1b9-{abs(hash((kind, str(ticket_id), str(comment)))) % 10**12:012d}",
        "subject": f"zen:ticket:{ticket_id}", "time": base["updated_at"], "type": f"zen:event-type:ticket.{kind}",
        "zendesk_event_version": "2022-11-06",
    }
    if comment is not None:
        body["event"] = {"comment": comment}
    return body


def zendesk_comment(comment_id: int, body: str, *, public: bool = True, staff: bool = False) -> dict[str, Any]:
    return {"id": comment_id, "body": body, "is_public": public,
            "author": {"id": 900 if staff else 8447388090494, "is_staff": staff, "name": "A"}}


def zendesk_trigger_rating(ticket_id: int | str, score: str, comment: str = "") -> dict[str, Any]:
    """The trigger body the README documents for satisfaction ratings (placeholders rendered)."""
    return {"ticket": {"id": str(ticket_id), "subject": "Refund", "status": "solved", "priority": "normal",
                       "group": "Billing", "tags": "refund vip", "requester_email": "Jane@Example.com",
                       "updated_at": "2025-01-09T08:00:00Z"},
            "satisfaction": {"score": score, "comment": comment}}


def freshdesk_payload(event: str, ticket_id: int | str, **fields: Any) -> dict[str, Any]:
    """Freshdesk's simple automation webhook body."""
    data = {"triggered_event": event, "ticket_id": str(ticket_id),
            "ticket_url": f"https://acme.freshdesk.com/helpdesk/tickets/{ticket_id}", "ticket_type": "Incident",
            "ticket_subject": "Order never arrived", "ticket_description": "<div>My order <b>#4711</b> never arrived."
            "</div><div>Please help.</div>", "ticket_status": "Open", "ticket_priority": "High",
            "ticket_group_name": "Shipping", "ticket_tags": "delivery,late", "requester_name": "Bob",
            "requester_email": "bob@example.com"}
    data.update(fields)
    return {"freshdesk_webhook": data}


def jira_issue(issue_id: str = "10042", key: str = "SD-42", **fields: Any) -> dict[str, Any]:
    base = {"summary": "VPN drops every hour", "description": "The VPN client disconnects every hour.",
            "status": {"name": "Waiting for support", "statusCategory": {"key": "new"}},
            "priority": {"name": "High"}, "labels": ["vpn"], "issuetype": {"name": "Service Request"},
            "components": [{"name": "Network"}], "created": "2025-02-01T09:00:00.000+0000",
            "updated": "2025-02-01T09:00:00.000+0000", "resolutiondate": None,
            "reporter": {"accountId": "557058:customer", "emailAddress": "carol@example.com",
                         "displayName": "Carol"}, "project": {"key": "SD"}}
    base.update(fields)
    return {"id": issue_id, "key": key, "self": f"https://acme.atlassian.net/rest/api/2/issue/{issue_id}",
            "fields": base}


def jira_payload(event: str, issue: dict[str, Any] | None = None, comment: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": 1738400400000, "webhookEvent": event,
                            "issue_event_type_name": event.split(":")[-1], "user": {"accountId": "557058:agent"},
                            "issue": issue or jira_issue()}
    if comment is not None:
        body["comment"] = comment
    body.update(extra)
    return body


def jira_comment(comment_id: str, body: Any, *, public: bool | None = True, author: str = "557058:customer"
                 ) -> dict[str, Any]:
    c: dict[str, Any] = {"id": comment_id, "body": body, "author": {"accountId": author},
                         "created": "2025-02-01T10:00:00.000+0000", "updated": "2025-02-01T10:00:00.000+0000"}
    if public is not None:
        c["jsdPublic"] = public
    return c


def generic_payload(event: str, ticket_id: str, **parts: Any) -> dict[str, Any]:
    ticket = {"id": ticket_id, "subject": "Invoice wrong", "description": "The invoice lists the wrong VAT.",
              "status": "open", "priority": "normal", "group": "billing", "tags": ["invoice"],
              "requester_email": "dan@example.com", "created_at": "2025-03-01T12:00:00Z",
              "updated_at": "2025-03-01T12:00:00Z"}
    ticket.update(parts.pop("ticket", {}))
    return {"system": "acme-desk", "event": event, "ticket": ticket, **parts}


# -- Zendesk ---------------------------------------------------------------------------------------------
def test_zendesk_created_comment_and_ids() -> None:
    f = RecordFactory(KEY)
    created = zendesk.map_webhook(zendesk_event("created", 5158), f).records
    assert [r.source_ref for r in created] == ["zendesk:ticket:5158"]
    rec = created[0]
    assert rec.source == "ticket" and rec.channel == "zendesk" and rec.thread_ref == "zendesk:ticket:5158"
    assert rec.subject == "Cannot log in to the mobile app" and "rejects my password" in rec.text
    assert rec.feedback_id == derive_feedback_id("ticket", "zendesk:ticket:5158")
    assert rec.attributes["ticket_status"] == "open" and rec.attributes["ticket_priority"] == "high"
    assert rec.attributes["ticket_tags"] == "mobile,login" and rec.tags == ["mobile", "login"]
    assert rec.attributes["ticket_event"] == "created" and rec.customer_ref and rec.customer_ref.startswith("c_")
    assert rec.event_time == datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)

    comment = zendesk.map_webhook(zendesk_event("comment_added", 5158, comment=zendesk_comment(
        9876543210, "Still broken after reinstalling.")), f).records
    assert [r.source_ref for r in comment] == ["zendesk:ticket:5158:comment:9876543210"]
    assert comment[0].thread_ref == "zendesk:ticket:5158" and comment[0].attributes["comment_id"] == "9876543210"
    # the same delivery maps to the same ids (idempotent re-delivery)
    again = zendesk.map_webhook(zendesk_event("created", 5158), RecordFactory(KEY)).records
    assert again[0].feedback_id == rec.feedback_id


@pytest.mark.parametrize(("comment", "reason"), [
    (zendesk_comment(1, "internal: refund approved", public=False), "internal_note"),
    (zendesk_comment(2, "We are looking into it.", staff=True), "agent_reply"),
    (zendesk_comment(3, "Since the update the app rejects my password. Very frustrating."), "description_comment"),
])
def test_zendesk_comments_that_are_not_customer_feedback_are_skipped(comment: dict[str, Any], reason: str) -> None:
    mapped = zendesk.map_webhook(zendesk_event("comment_added", 7, comment=comment), RecordFactory(KEY))
    assert mapped.records == [] and mapped.skipped == [reason]


def test_zendesk_status_change_is_a_state_record() -> None:
    payload = zendesk_event("status_changed", 7, status="SOLVED", updated_at="2025-01-09T08:00:00Z",
                            event={"current": "SOLVED", "previous": "OPEN"})
    [rec] = zendesk.map_webhook(payload, RecordFactory(KEY)).records
    assert rec.is_ticket_state and rec.source_ref.startswith("zendesk:ticket:7:state:")
    assert rec.attributes["ticket_status"] == "solved" and rec.attributes["ticket_solved"] is True


def test_zendesk_trigger_rating_maps_good_bad_to_csat() -> None:
    f = RecordFactory(KEY)
    [bad] = zendesk.map_webhook(zendesk_trigger_rating(8, "Bad", "Took a week to answer"), f).records
    assert bad.csat_score == 1 and bad.text == "Took a week to answer"
    assert bad.attributes["csat_raw"] == "bad" and bad.attributes["ticket_group"] == "Billing"
    assert bad.attributes["ticket_tags"] == "refund,vip" and bad.source_ref.startswith("zendesk:ticket:8:rating:")
    [good] = zendesk.map_webhook(zendesk_trigger_rating(8, "Good"), f).records
    assert good.csat_score == 5 and good.text == "" and good.score_only  # a rating without a comment
    assert good.attributes["csat_has_comment"] is False
    assert zendesk.map_webhook(zendesk_trigger_rating(8, "offered"), f).skipped == ["rating_not_given"]


@pytest.mark.parametrize("payload", [
    {"type": "zen:event-type:user.created", "detail": {"id": "1"}},
    {"hello": "world"},
    [1, 2],
])
def test_zendesk_unknown_events_raise(payload: Any) -> None:
    with pytest.raises(RecordError) as err:
        zendesk.map_webhook(payload, RecordFactory(KEY))
    assert err.value.reason in ("unknown_event", "invalid_payload")


def test_zendesk_export_ticket_comments_and_rating() -> None:
    f = RecordFactory(KEY)
    raw = {"id": 35436, "subject": "Help, my printer is on fire!", "description": "The fire is very colorful.",
           "status": "solved", "priority": "urgent", "type": "incident", "tags": ["enterprise"], "group_id": 98738,
           "requester_id": 20978392, "created_at": "2009-07-20T22:55:29Z", "updated_at": "2011-05-05T10:38:52Z",
           "satisfaction_rating": {"id": 1234, "score": "good", "comment": "Great support!"}}
    sideloads = {"users": {20978392: {"id": 20978392, "email": "req@example.com", "role": "end-user"}},
                 "groups": {98738: {"id": 98738, "name": "Hardware"}},
                 "metric_sets": {35436: {"ticket_id": 35436, "solved_at": "2011-05-04T10:00:00Z"}}}
    ticket, mapped = zendesk.map_export_ticket(raw, sideloads, f)
    refs = [r.source_ref for r in mapped.records]
    assert refs == ["zendesk:ticket:35436", "zendesk:ticket:35436:rating:1234"]
    assert mapped.records[0].attributes["ticket_group"] == "Hardware"
    assert mapped.records[0].attributes["ticket_solved_at"] == "2011-05-04T10:00:00+00:00"
    assert mapped.records[1].csat_score == 5 and mapped.records[1].text == "Great support!"
    comments = [
        {"id": 1, "public": True, "author_id": 20978392, "body": "The fire is very colorful.",
         "created_at": "2009-07-20T22:55:29Z"},
        {"id": 2, "public": False, "author_id": 7, "body": "internal", "created_at": "2009-07-21T00:00:00Z"},
        {"id": 3, "public": True, "author_id": 7, "body": "Agent reply", "created_at": "2009-07-21T01:00:00Z"},
        {"id": 4, "public": True, "author_id": 20978392, "plain_body": "Still burning.",
         "created_at": "2009-07-21T02:00:00Z"},
    ]
    out = zendesk.map_comments(ticket, comments, {20978392: "end-user", 7: "agent"}, f)
    assert [r.source_ref for r in out.records] == ["zendesk:ticket:35436:comment:4"]
    assert sorted(out.skipped) == ["agent_reply", "internal_note"]


# -- Freshdesk -------------------------------------------------------------------------------------------
def test_freshdesk_created_strips_html_and_keeps_state() -> None:
    [rec] = freshdesk.map_webhook(freshdesk_payload("{ticket_action:created}", 11), RecordFactory(KEY)).records
    assert rec.source_ref == "freshdesk:ticket:11" and rec.channel == "freshdesk"
    assert rec.text == "My order #4711 never arrived.\nPlease help."
    assert rec.attributes["ticket_group"] == "Shipping" and rec.attributes["ticket_tags"] == "delivery,late"


def test_freshdesk_notes_status_and_feedback() -> None:
    f = RecordFactory(KEY)
    private = freshdesk.map_webhook(freshdesk_payload("{note_type:private}", 11), f)
    assert private.records == [] and private.skipped == ["internal_note"]
    public = freshdesk.map_webhook(freshdesk_payload("{note_type:public}", 11, note_id="77",
                                                     ticket_latest_public_comment="Any news?"), f)
    assert [r.source_ref for r in public.records] == ["freshdesk:ticket:11:comment:77"]
    status = freshdesk.map_webhook(freshdesk_payload("{status:{from:2,to:4}}", 11, ticket_status="Resolved"), f)
    assert status.records[0].is_ticket_state and status.records[0].attributes["ticket_solved"] is True
    rating = freshdesk.map_webhook(freshdesk_payload("{customer_feedback:received}", 11, satisfaction_rating="-103",
                                                     satisfaction_comment="Nobody helped"), f)
    assert rating.records[0].csat_score == 1 and rating.records[0].text == "Nobody helped"
    with pytest.raises(RecordError, match="unknown_event"):
        freshdesk.map_webhook(freshdesk_payload("no braces here at all", 11), f)


# -- Jira ------------------------------------------------------------------------------------------------
def test_jira_issue_created_and_comments() -> None:
    f = RecordFactory(KEY)
    [rec] = jira.map_webhook(jira_payload("jira:issue_created"), f).records
    assert rec.source_ref == "jira:ticket:10042" and rec.attributes["ticket_key"] == "SD-42"
    assert rec.attributes["ticket_status"] == "waiting for support" and rec.attributes["ticket_group"] == "Network"
    assert rec.event_time == datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
    adf = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "Still dropping"}, {"type": "hardBreak"}, {"type": "text", "text": "every hour"}]}]}
    out = jira.map_webhook(jira_payload("comment_created", comment=jira_comment("100", adf)), f)
    assert out.records[0].source_ref == "jira:ticket:10042:comment:100"
    assert out.records[0].text == "Still dropping\nevery hour"
    internal = jira.map_webhook(jira_payload("comment_created", comment=jira_comment("101", "x", public=False)), f)
    agent = jira.map_webhook(jira_payload("comment_created", comment=jira_comment("102", "Try a reboot",
                                                                                 author="557058:agent")), f)
    assert internal.skipped == ["internal_note"] and agent.skipped == ["agent_reply"]


def test_jira_issue_updated_state_and_satisfaction() -> None:
    issue = jira_issue(status={"name": "Resolved", "statusCategory": {"key": "done"}},
                       resolutiondate="2025-02-02T09:00:00.000+0000", updated="2025-02-02T09:30:00.000+0000",
                       customfield_10034={"rating": 2, "comment": {"body": "Slow"}})
    out = jira.map_webhook(jira_payload("jira:issue_updated", issue=issue, changelog={
        "id": "1", "items": [{"field": "status", "fromString": "Open", "toString": "Resolved"}]}), RecordFactory(KEY))
    state, rating = out.records
    assert state.is_ticket_state and state.attributes["ticket_solved"] is True
    assert state.attributes["ticket_solved_at"] == "2025-02-02T09:00:00+00:00"
    assert rating.csat_score == 2 and rating.text == "Slow" and rating.source_ref.endswith(":rating:customfield_10034")
    with pytest.raises(RecordError, match="unknown_event"):
        jira.map_webhook(jira_payload("worklog_created"), RecordFactory(KEY))


# -- generic ---------------------------------------------------------------------------------------------
def test_generic_events() -> None:
    f = RecordFactory(KEY)
    [rec] = generic.map_webhook(generic_payload("ticket.created", "T-1"), f).records
    assert rec.source_ref == "acme-desk:ticket:T-1" and rec.channel == "acme-desk"
    [rating] = generic.map_webhook(generic_payload("rating.created", "T-1", rating={"id": "r1", "score": 4}), f).records
    assert rating.csat_score == 4 and rating.source_ref == "acme-desk:ticket:T-1:rating:r1"
    with pytest.raises(RecordError, match="invalid_payload"):
        generic.map_webhook(generic_payload("rating.created", "T-1", rating={"score": 9}), f)
    with pytest.raises(RecordError, match="invalid_payload"):
        generic.map_webhook({**generic_payload("ticket.created", "T-1"), "system": "zendesk"}, f)
    with pytest.raises(RecordError, match="unknown_event"):
        generic.map_webhook(generic_payload("ticket.exploded", "T-1"), f)


# -- helpers ---------------------------------------------------------------------------------------------
def test_html_to_text_and_times() -> None:
    assert html_to_text("<p>Hello<br>world</p><ul><li>a</li><li>b</li></ul>") == "Hello\nworld\na\nb"
    assert html_to_text("no markup & fine") == "no markup & fine"
    assert html_to_text("<br/>") == ""
    assert parse_time("2025-02-01T09:00:00.000+0000") == datetime(2025, 2, 1, 9, tzinfo=UTC)
    assert parse_time(1738400400000) == parse_time(1738400400) == datetime(2025, 2, 1, 9, tzinfo=UTC)
    assert parse_time("yesterday") is None


def test_long_values_are_bounded_not_rejected() -> None:
    payload = copy.deepcopy(zendesk_event("created", 9, description="x" * 100_000, tags=["t" * 300] * 80,
                                          subject="s" * 5000))
    [rec] = zendesk.map_webhook(payload, RecordFactory(KEY)).records
    assert len(rec.text) == 64 * 1024 and len(rec.tags) == 50 and len(rec.subject or "") == 1000
