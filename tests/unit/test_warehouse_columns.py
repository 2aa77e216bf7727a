"""Every string column of every warehouse table is at least as wide as the record field it stores.

A record field longer than its column is a poison pill on PostgreSQL (``value too long``), so the
bounds of :mod:`pipeline.schema` must follow the columns. A new string column must be declared here
with the field it stores (or why no record field reaches it), or this test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import String, Text

from pipeline import schema
from pipeline.schema import Aspect, CategoryTag, EnrichedFeedback, Sentiment
from pipeline.signal_schema import Alert, Incident, SignalWindow


def _tables() -> dict[str, Any]:
    """Every warehouse table Alembic sees: sinks.warehouse's and those registered by other components
    (``feedback.tables`` entry points), whatever else this test session happened to import."""
    from sinks.warehouse.db import declared_metadata

    return {t.name: t for meta in declared_metadata() for t in meta.sorted_tables}


def field_bound(model: type[BaseModel], name: str) -> int:
    """The largest length ``model.name`` accepts: its max_length, or its longest Literal value."""
    prop = model.model_json_schema(mode="validation")["properties"][name]
    options = prop.get("anyOf", [prop])
    bounds = []
    for option in options:
        if option.get("type") == "null":
            continue
        if "maxLength" in option:
            bounds.append(option["maxLength"])
        elif "enum" in option or "const" in option:
            bounds.append(max(len(v) for v in option.get("enum", [option.get("const")])))
        else:
            raise AssertionError(f"{model.__name__}.{name} has no length bound")
    return max(bounds)


def field(model: type[BaseModel], name: str) -> Callable[[], int]:
    return lambda: field_bound(model, name)


def const(value: int) -> Callable[[], int]:
    return lambda: value


#: (table, column) -> the bound of what is written there, or a string: why no record field reaches it.
STORED: dict[tuple[str, str], Callable[[], int] | str] = {
    **{("feedback", c): field(EnrichedFeedback, c) for c in (
        "source", "channel", "source_ref", "thread_ref", "customer_ref", "subject", "language", "nps_class",
        "product", "detected_language", "origin")},
    ("feedback", "sentiment_label"): field(Sentiment, "label"),
    ("feedback", "sentiment_analyzer"): field(Sentiment, "analyzer"),
    ("feedback", "sentiment_model"): field(Sentiment, "model"),
    ("feedback", "primary_category"): field(CategoryTag, "name"),
    ("feedback_categories", "category"): field(CategoryTag, "name"),
    ("feedback_aspects", "category"): field(Aspect, "category"),
    ("feedback_aspects", "sentiment_label"): field(Aspect, "label"),
    ("customers", "customer_ref"): field(EnrichedFeedback, "customer_ref"),
    ("tickets", "ticket_key"): const(schema.MAX_TICKET_KEY_CHARS),
    ("tickets", "system"): "cut to the column's width by tickets.ticket_row (part of ticket_key)",
    ("tickets", "ticket_id"): "cut to the column's width by tickets.ticket_row (part of ticket_key)",
    ("tickets", "external_key"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_key"]),
    ("tickets", "status"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_status"]),
    ("tickets", "priority"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_priority"]),
    ("tickets", "group_name"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_group"]),
    ("tickets", "ticket_type"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_type"]),
    ("tickets", "csat_raw"): const(schema.TICKET_ATTRIBUTE_MAX_CHARS["csat_raw"]),
    ("tickets", "subject"): field(EnrichedFeedback, "subject"),
    ("tickets", "customer_ref"): field(EnrichedFeedback, "customer_ref"),
    ("tickets", "primary_category"): field(CategoryTag, "name"),
    ("signal_windows", "scope_type"): field(SignalWindow, "scope_type"),
    ("signal_windows", "scope_value"): field(SignalWindow, "scope_value"),
    **{("alerts", c): field(Alert, c) for c in (
        "signal", "scope_type", "scope_value", "status", "severity", "acknowledged_by")},
    ("alerts", "resolved_by"): field(Alert, "acknowledged_by"),  # 'detector' or an operator, like acknowledged_by
    ("alert_history", "actor"): field(Alert, "actor"),
    ("alert_history", "action"): field(Alert, "event"),
    ("alert_history", "status"): field(Alert, "status"),
    ("alert_history", "severity"): field(Alert, "severity"),
    **{("incidents", c): field(Incident, c) for c in (
        "kind", "status", "severity", "driver_scope_type", "driver_scope_value", "acknowledged_by")},
    ("incidents", "resolved_by"): field(Incident, "acknowledged_by"),  # 'detector' or an operator
    ("incident_history", "actor"): field(Incident, "actor"),
    ("incident_history", "action"): field(Incident, "event"),
    ("incident_history", "status"): field(Incident, "status"),
    ("incident_history", "severity"): field(Incident, "severity"),
    ("alert_deliveries", "channel"): "a configured channel's name (alert sink settings), not a record field",
    ("alert_deliveries", "event"): field(Alert, "event"),
    ("alert_deliveries", "status"): "the alert sink's own delivery states",
    ("retention_log", "action"): "the retention command's own action names",
    ("retention_log", "criteria"): "written by the retention command from operator input it bounds",
    ("retention_log", "actor"): "the operator running the retention command",
    ("feedback_labels", "kind"): "'sentiment' or 'category', written by labels.apply",
    ("feedback_labels", "value"): "a label or categories joined by labels.parse_correction, which bounds it",
    ("feedback_labels", "previous"): field(CategoryTag, "name"),  # the label or primary category before
    ("feedback_labels", "analyst"): "cut to the column's width by labels.parse_correction",
    ("models", "version"): field(Sentiment, "model"),  # what records carry as sentiment.model
    ("models", "kind"): "'sentiment' or 'category', written by processors.learning",
    ("models", "file"): "a model file's name in FEEDBACK_MODEL_DIR (the version + .joblib)",
    ("models", "sha256"): "a SHA-256 in hex (64 characters)",
    ("contacts", "customer_ref"): field(EnrichedFeedback, "customer_ref"),
    ("followups", "customer_ref"): field(EnrichedFeedback, "customer_ref"),
    ("followups", "target"): "'zendesk', 'freshdesk' or 'webhook' (FollowupSettings.followup_target)",
    ("followups", "reason"): "the follow-up rule's own reason names (sinks.followups.sink.follow_up_reason)",
    ("followups", "status"): "the follow-up sink's own states (pending, sending, created, failed, unknown)",
    ("followups", "ticket_id"): "cut to the column's width by the follow-up sink",
    ("followups", "error"): "cut to the column's width by the follow-up sink",
    ("source_state", "namespace"): "a source's name and its configured host or account (operator settings)",
    ("source_state", "key"): "a configured folder, or a source's own cursor name (operator settings)",
    ("email_checkpoints", "account"): "the configured IMAP account (an address is at most 320 characters)",
    ("email_checkpoints", "folder"): "a configured IMAP folder (operator settings; table kept for migration)",
    ("erasure_ledger", "erased_ref"): "a customer_ref of the keyed-hash form (schema.CUSTOMER_REF_PATTERN, 43 chars)",
}


def string_columns() -> list[tuple[str, str, int]]:
    return [(t.name, c.name, c.type.length) for t in _tables().values() for c in t.columns
            if isinstance(c.type, String) and not isinstance(c.type, Text) and c.type.length]


@pytest.mark.parametrize(("table", "column", "width"), string_columns(), ids=lambda v: str(v))
def test_every_string_column_holds_its_field(table: str, column: str, width: int) -> None:
    assert (table, column) in STORED, f"{table}.{column}: declare the record field it stores in STORED"
    bound = STORED[(table, column)]
    if isinstance(bound, str):
        return  # documented: no record field reaches this column
    assert bound() <= width, f"{table}.{column} is VARCHAR({width}) but its field accepts {bound()} characters"


def test_the_declarations_name_only_real_columns() -> None:
    real = {(t, c) for t, c, _ in string_columns()}
    assert set(STORED) - real == set(), "STORED names columns that do not exist (or are not strings)"


def test_ticket_attributes_over_their_column_are_refused() -> None:
    status = "x" * (schema.TICKET_ATTRIBUTE_MAX_CHARS["ticket_status"] + 1)
    with pytest.raises(ValueError, match="ticket_status"):
        schema.FeedbackRecord(source="ticket", source_ref="z:1", text="t", attributes={"ticket_status": status})
    with pytest.raises(ValueError, match="thread_ref"):
        schema.FeedbackRecord(source="ticket", source_ref="z:2", text="t",
                              thread_ref="zendesk:ticket:" + "9" * schema.MAX_TICKET_KEY_CHARS)
    long_tag = "en-" + "-".join(["abcdefgh"] * 5)  # matches the language pattern, 47 characters
    with pytest.raises(ValueError, match="35"):
        schema.FeedbackRecord(source_ref="l:1", text="t", language=long_tag)

