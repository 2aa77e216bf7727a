from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pipeline.schema import (
    COPIED_IDENTITY,
    DeadLetter,
    EnrichedFeedback,
    FeedbackRecord,
    customer_ref,
    derive_feedback_id,
    nps_class,
)
from pipeline.signal_schema import write_json_schemas


def test_smallest_event_gets_defaults_and_derived_id() -> None:
    r = FeedbackRecord(source_ref="crm-4711", text="hello")
    assert r.source == "event"
    assert r.schema_version == 1
    assert r.feedback_id == derive_feedback_id("event", "crm-4711")
    assert r.feedback_id.version == 5
    assert r.event_time.tzinfo is not None and r.received_at.tzinfo is not None
    assert r.key == str(r.feedback_id).encode()


def test_identity_depends_on_source_and_ref_only() -> None:
    assert derive_feedback_id("email", "a") != derive_feedback_id("ticket", "a")
    assert derive_feedback_id("email", "a") == derive_feedback_id("email", "a")
    a = FeedbackRecord(source="email", source_ref="<m1@x>", text="one")
    b = FeedbackRecord(source="email", source_ref="<m1@x>", text="two", nps_score=3)
    assert a.feedback_id == b.feedback_id


def test_supplied_id_must_match_the_derived_one() -> None:
    good = derive_feedback_id("event", "x")
    assert FeedbackRecord(source_ref="x", text="t", feedback_id=good).feedback_id == good
    with pytest.raises(ValidationError, match="UUIDv5"):
        FeedbackRecord(source_ref="x", text="t", feedback_id=uuid.uuid4())


def test_a_forged_id_is_refused_unless_copied_from_a_validated_record() -> None:
    enriched = {"source_ref": "x", "text": "t", "sentiment": {"polarity": 0, "subjectivity": 0, "label": "neutral"},
                "categories": [{"name": "other", "confidence": 1.0}]}
    forged = uuid.uuid4()
    for model in (FeedbackRecord, EnrichedFeedback):  # the normal path, and any other context
        with pytest.raises(ValidationError, match="UUIDv5"):
            model.model_validate({**enriched, "feedback_id": forged} if model is EnrichedFeedback
                                 else {"source_ref": "x", "text": "t", "feedback_id": forged})
        with pytest.raises(ValidationError, match="UUIDv5"):
            model.model_validate_json(json.dumps({"source_ref": "x", "text": "t", "feedback_id": str(forged)}
                                                 if model is FeedbackRecord else
                                                 {**enriched, "feedback_id": str(forged)}))
    with pytest.raises(ValidationError, match="UUIDv5"):
        EnrichedFeedback.model_validate({**enriched, "feedback_id": forged}, context=dict(COPIED_IDENTITY))
    # The enricher's path: the id was checked when its record was validated, so it is copied, not derived
    record = FeedbackRecord(source_ref="x", text="t")
    copied = EnrichedFeedback.model_validate({**record.__dict__, **enriched}, context=COPIED_IDENTITY)
    assert copied.feedback_id == record.feedback_id == derive_feedback_id("event", "x")
    assert EnrichedFeedback.model_validate(enriched, context=COPIED_IDENTITY).feedback_id == record.feedback_id


@pytest.mark.parametrize(
    ("field", "value"),
    [("nps_score", 11), ("nps_score", -1), ("csat_score", 0), ("csat_score", 6), ("stars", 6),
     ("source", "fax"), ("text", "x" * 65537), ("source_ref", ""), ("language", "english!")],
)
def test_out_of_range_values_are_rejected(field: str, value: object) -> None:
    data = {"source_ref": "r", "text": "t", field: value}
    with pytest.raises(ValidationError) as exc:
        FeedbackRecord.model_validate(data)
    assert exc.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_text_without_a_score_is_rejected(blank: str) -> None:
    with pytest.raises(ValidationError, match="a text or a score"):
        FeedbackRecord.model_validate({"source_ref": "r", "text": blank})
    assert FeedbackRecord.model_validate({"source_ref": "r", "text": blank, "nps_score": 0}).text == ""


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        FeedbackRecord.model_validate({"source_ref": "r", "text": "t", "sentimnet": 1})


def test_naive_times_are_utc_and_offsets_are_normalised() -> None:
    r = FeedbackRecord(source_ref="r", text="t", event_time=datetime(2026, 3, 10, 12, 0))
    assert r.event_time == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    cet = timezone(timedelta(hours=1))
    r = FeedbackRecord(source_ref="r", text="t", event_time=datetime(2026, 3, 10, 13, 0, tzinfo=cet))
    assert r.event_time.utcoffset() == timedelta(0) and r.event_time.hour == 12


def test_json_round_trip() -> None:
    r = FeedbackRecord(source_ref="r", text="Käse ☕", nps_score=9, tags=["a"], attributes={"status": "open"})
    assert FeedbackRecord.model_validate_json(r.model_dump_json()) == r


@pytest.mark.parametrize(("score", "cls"), [(0, "detractor"), (6, "detractor"), (7, "passive"),
                                            (8, "passive"), (9, "promoter"), (10, "promoter"), (None, None)])
def test_nps_class(score: int | None, cls: str | None) -> None:
    assert nps_class(score) == cls


def test_customer_ref_is_keyed_normalised_and_not_the_address() -> None:
    a = customer_ref(" Jane.Doe@Example.com ", b"k1")
    assert a == customer_ref("jane.doe@example.com", b"k1")
    assert a != customer_ref("jane.doe@example.com", b"k2")
    assert "example" not in a and a.startswith("c_")


def test_dead_letter_keeps_payload_losslessly() -> None:
    text = DeadLetter.for_payload(b'{"a": 1}', stage="processor", reason="x")
    assert text.payload_encoding == "utf-8" and text.original_bytes() == b'{"a": 1}'
    binary = DeadLetter.for_payload(b"\xff\x00\xfe", stage="processor", reason="x")
    assert binary.payload_encoding == "base64" and binary.original_bytes() == b"\xff\x00\xfe"
    assert binary.key_bytes() is None


def test_published_json_schemas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = write_json_schemas(tmp_path)
    names = {p.name for p in paths}
    assert {"feedback-record.schema.json", "enriched-feedback.schema.json", "dead-letter.schema.json"} <= names
    schema = json.loads((tmp_path / "feedback-record.schema.json").read_text())
    assert schema["required"] == ["source_ref"]
    # a text or a score: what FeedbackRecord's validator enforces, in the published schema too
    assert [next(iter(alt["required"])) for alt in schema["anyOf"]] == ["text", "nps_score", "csat_score", "stars"]
    assert schema["properties"]["nps_score"]["anyOf"][0]["maximum"] == 10
    assert schema["additionalProperties"] is False
