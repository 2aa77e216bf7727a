"""The processor's per-record step without Kafka: parse, dedupe, enrich, dead-letter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import RecordError
from pipeline.schema import DeadLetter, EnrichedFeedback, FeedbackRecord
from pipeline.topics import Topics
from processors.app import process_one
from processors.enrich import Enricher, RecentSet, normalize_text, parse_raw
from processors.taxonomy import Taxonomy

TOPICS = Topics("r", "e", "a", "d")


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(Taxonomy.load())


def raw(**fields: object) -> bytes:
    data = {"source_ref": "r1", "text": "fine", "event_time": "2026-03-10T10:00:00Z", **fields}
    return FeedbackRecord.model_validate(data).model_dump_json().encode()


def test_parse_raw_reasons() -> None:
    with pytest.raises(RecordError) as exc:
        parse_raw(b"{nope")
    assert exc.value.reason == "malformed_json"
    with pytest.raises(RecordError) as exc:
        parse_raw(b"[1, 2]")
    assert exc.value.reason == "not_an_object"
    with pytest.raises(RecordError) as exc:
        parse_raw(json.dumps({"source_ref": "x", "text": "t", "nps_score": 42}).encode())
    assert exc.value.reason == "schema_violation" and "nps_score" in exc.value.detail


def test_normalize_text() -> None:
    assert normalize_text("  a\u200b b \t\t c\x00 \n\n\n\n d ") == "a b c \n\n d"
    assert normalize_text("\u200b\u2060\ufeff") == ""


def test_normalize_text_folds_only_what_needs_folding() -> None:
    assert normalize_text("a b\tc\r\nd  e \f\v f") == "a b c\nd e f"  # a lone tab: a space; CR: dropped
    assert normalize_text("Cafe\u0301 ok") == "Caf\u00e9 ok"  # non-ASCII text is still NFC-normalised
    assert normalize_text("one\n\ntwo\n\n\nthree") == "one\n\ntwo\n\nthree"


def test_enriched_record_does_not_share_containers_with_its_input(enricher: Enricher) -> None:
    record = FeedbackRecord(source_ref="r9", text="Great app, fast delivery.", tags=["a"], attributes={"k": "v"})
    enriched = enricher.enrich(record)
    assert enriched.tags == record.tags and enriched.attributes == record.attributes
    assert enriched.tags is not record.tags and enriched.attributes is not record.attributes
    enriched.tags.append("b")
    assert record.tags == ["a"]
    again = EnrichedFeedback.model_validate(enriched.model_dump())  # what enrich returns is already valid
    assert again.model_dump(exclude={"processed_at"}) == enriched.model_dump(exclude={"processed_at"})


def test_enriched_record(enricher: Enricher) -> None:
    out = process_one(raw(text="The parcel never arrived and support never answered.", nps_score=1),
                      None, enricher, RecentSet(10), TOPICS)
    assert out is not None and out[0] == "enriched"
    enriched = EnrichedFeedback.model_validate_json(out[2])
    assert enriched.nps_class == "detractor"
    assert {"delivery", "customer_support"} <= {c.name for c in enriched.categories}
    assert out[1] == enriched.key


def test_exact_redelivery_is_dropped_but_an_edit_passes(enricher: Enricher) -> None:
    recent = RecentSet(10)
    assert process_one(raw(text="Great app"), None, enricher, recent, TOPICS) is not None
    assert process_one(raw(text="Great app"), None, enricher, recent, TOPICS) is None
    assert process_one(raw(text="Great app, but slow"), None, enricher, recent, TOPICS) is not None


def test_bad_records_become_dead_letters(enricher: Enricher) -> None:
    out = process_one(b"\xff\xfe", None, enricher, RecentSet(10), TOPICS)
    assert out is not None and out[0] == "dlq"
    letter = DeadLetter.model_validate_json(out[2])
    assert letter.stage == "processor" and letter.reason == "malformed_json"
    assert letter.original_bytes() == b"\xff\xfe"
    out = process_one(raw(text="\u200b"), None, enricher, RecentSet(10), TOPICS)
    assert out is not None and DeadLetter.model_validate_json(out[2]).reason == "empty_text"


def test_recent_set_is_bounded() -> None:
    s = RecentSet(2)
    assert not s.seen("a") and not s.seen("b") and s.seen("a")
    assert not s.seen("c")  # evicts b (a was refreshed)
    assert s.seen("a") and not s.seen("b")
    assert not RecentSet(0).seen("x") and not RecentSet(0).seen("x")


@given(value=st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode),
                       st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5)
                       .map(lambda d: json.dumps({"source_ref": "p", "text": "t", **d}).encode())))
@settings(max_examples=200, deadline=None)
def test_any_raw_value_is_enriched_or_dead_lettered(value: bytes) -> None:
    """Whatever an outside producer puts into feedback.raw, the processor never raises."""
    out = process_one(value, None, Enricher(Taxonomy.load()), RecentSet(0), TOPICS)
    assert out is not None and out[0] in ("enriched", "dlq")
    if out[0] == "dlq":
        letter = DeadLetter.model_validate_json(out[2])
        assert letter.reason and letter.original_bytes() == value
