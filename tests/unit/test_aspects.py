"""Sentences, aspects and the whole enrichment step: redaction first, language gate, aspects."""

from __future__ import annotations

import pytest

from pipeline.schema import FeedbackRecord
from processors.aspects import build, summary
from processors.enrich import Enricher
from processors.sentences import split_sentences
from processors.taxonomy import Taxonomy


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=("US", "GB", "DE"))


@pytest.mark.parametrize("text, expected", [
    ("The parcel arrived late. Nobody answered!! But support was great...thanks",
     ["The parcel arrived late.", "Nobody answered!!", "But support was great...thanks"]),
    ("Price was 3.5 EUR, e.g. cheap. Mr. Smith helped me.", ["Price was 3.5 EUR, e.g. cheap.", "Mr. Smith helped me."]),
    ("see https://example.com/a.b?c=d. ok?", ["see https://example.com/a.b?c=d.", "ok?"]),
    ("Line one\nline two", ["Line one", "line two"]),
    ("He said “fine.” Then left", ["He said “fine.”", "Then left"]),
    ("wow... loved it", ["wow...", "loved it"]),
    ("no punctuation at all", ["no punctuation at all"]),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_aspects_carry_category_and_sentence_sentiment(enricher: Enricher) -> None:
    record = FeedbackRecord(source_ref="a1", text=(
        "The parcel came a week late and the box was damaged. "
        "The support agent was lovely and sorted it out quickly. Thanks."))
    out = enricher.enrich(record)
    by_category = summary(out.aspects)
    assert by_category["delivery"] == "negative"
    assert by_category["customer_support"] == "positive"
    assert [a.sentence for a in out.aspects] == sorted(a.sentence for a in out.aspects)
    assert all(a.text in out.text for a in out.aspects)
    assert {"delivery", "customer_support"} <= {c.name for c in out.categories}


def test_build_gives_other_for_sentences_without_category() -> None:
    rows = build(["Hello.", "Billing is wrong."], [{"label": "neutral", "score": 0.0},
                                                  {"label": "negative", "score": -0.8}],
                 [[("other", 1.0)], [("billing", 0.75)]])
    assert [(r["sentence"], r["category"], r["label"]) for r in rows] == [
        (0, "other", "neutral"), (1, "billing", "negative")]


def test_pii_is_redacted_before_anything_leaves_and_the_raw_record_keeps_it(enricher: Enricher) -> None:
    record = FeedbackRecord(
        source_ref="a2", subject="Refund for jane.doe@example.com",
        text="I was charged twice on card 4111 1111 1111 1111. Call me on +44 20 7946 0958.",
        attributes={"requester": "jane.doe@example.com", "ticket": 4711},
        original_text="Full mail from jane.doe@example.com ...",
    )
    out = enricher.enrich(record)
    dumped = out.model_dump_json()
    assert "jane.doe" not in dumped and "4111" not in dumped and "7946" not in dumped
    assert out.text == "I was charged twice on card [CARD]. Call me on [PHONE]."
    assert out.subject == "Refund for [EMAIL]" and out.attributes == {"requester": "[EMAIL]", "ticket": 4711}
    assert out.redacted and out.redactions == {"card": 1, "phone": 1, "email": 2}
    assert out.original_text is None  # the raw topic keeps the original under its own retention
    assert "4111 1111 1111 1111" in record.text and record.original_text  # input untouched
    assert out.sentiment.label == "negative"


def test_non_english_is_tagged_and_not_assessed(enricher: Enricher) -> None:
    out = enricher.enrich(FeedbackRecord(source_ref="a3", text="Das Paket kam zu spät an und niemand hat geantwortet."))
    assert out.detected_language == "de" and out.language_confidence and out.language_confidence > 0.5
    assert out.sentiment.label == "not_assessed" and out.sentiment.score is None
    assert all(a.label == "not_assessed" for a in out.aspects)
    out = enricher.enrich(FeedbackRecord(source_ref="a4", text="Great!"))
    assert out.detected_language == "en" and out.sentiment.label == "positive"


def test_declared_language_decides_only_when_detection_is_unsure(enricher: Enricher) -> None:
    short = "Servicio top"  # too short to be sure
    english = enricher.assess(short, declared_language="en")
    spanish = enricher.assess(short, declared_language="es")
    assert spanish.sentiment["label"] == "not_assessed"
    assert english.language.confidence < 0.5 or english.language.language == "en"
    sure = enricher.assess("Das ist wirklich ein sehr guter Service", declared_language="en")
    assert sure.sentiment["label"] == "not_assessed"  # a confident detection wins over the declaration


def test_text_without_letters_is_scored_not_skipped(enricher: Enricher) -> None:
    out = enricher.enrich(FeedbackRecord(source_ref="a5", text=":-)"))
    assert out.detected_language == "und" and out.sentiment.label == "positive"
    out = enricher.enrich(FeedbackRecord(source_ref="a5", text="👍👍"))
    assert out.detected_language == "und" and out.sentiment.label != "not_assessed"


def test_settings_choose_the_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_SENTIMENT", "vader")
    monkeypatch.setenv("FEEDBACK_PHONE_REGIONS", "US")
    e = Enricher(Taxonomy.load())
    assert e.analyzer_name == "vader" and e.phone_regions == ("US",)
    assert e.enrich(FeedbackRecord(source_ref="a6", text="Awful service.")).sentiment.analyzer == "vader"
