"""Score-only answers: valid on their own, enriched without sentiment or categories, written with them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pipeline.errors import RecordError
from pipeline.schema import EnrichedFeedback, FeedbackRecord
from processors.enrich import Enricher
from processors.signals.windows import scopes_of
from processors.taxonomy import Taxonomy
from sinks.warehouse.writer import category_columns, feedback_columns, feedback_row


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(Taxonomy.load())


@pytest.mark.parametrize("score", [{"nps_score": 0}, {"csat_score": 5}, {"stars": 3}])
def test_a_score_without_text_is_a_record(score: dict[str, int]) -> None:
    rec = FeedbackRecord(source_ref="r1", **score)
    assert rec.text == "" and rec.score_only
    assert FeedbackRecord.model_validate({"source_ref": "r1", "text": "   ", **score}).score_only


@pytest.mark.parametrize("text", [None, "", "  \n "])
def test_neither_text_nor_score_is_refused(text: str | None) -> None:
    data = {"source_ref": "r1"} if text is None else {"source_ref": "r1", "text": text}
    with pytest.raises(ValidationError, match="a text or a score"):
        FeedbackRecord.model_validate(data)


def test_score_only_enrichment_has_no_sentiment_or_categories(enricher: Enricher) -> None:
    rec = FeedbackRecord(source_ref="r1", nps_score=3, subject="Order 5 from ann@example.org",
                         attributes={"who": "ann@example.org"}, event_time=datetime(2026, 3, 1, tzinfo=UTC))
    out = enricher.enrich(rec)
    assert out.sentiment.label == "not_assessed" and out.sentiment.score is None
    assert out.categories == [] and out.aspects == [] and out.nps_class == "detractor"
    assert out.subject is not None and "@" not in out.subject and out.attributes["who"] == "[EMAIL]"
    assert out.redactions == {"email": 2}
    # counted overall, by source and channel, never in a category scope
    assert [s for s in scopes_of(out) if s[0] == "category"] == []
    # invisible characters only and no score: still refused, to the dead letters
    with pytest.raises(RecordError) as exc:
        enricher.enrich(FeedbackRecord(source_ref="r2", text="\u200b"))
    assert exc.value.reason == "empty_text"
    # invisible characters with a score: score-only
    assert enricher.enrich(FeedbackRecord(source_ref="r3", text="\u200b", csat_score=2)).text == ""


def test_enriched_contract_ties_categories_to_text(enricher: Enricher) -> None:
    worded = enricher.enrich(FeedbackRecord(source_ref="r1", text="Delivery was late", nps_score=2))
    with pytest.raises(ValidationError, match="categories"):
        EnrichedFeedback.model_validate({**worded.model_dump(), "categories": []})
    scored = enricher.enrich(FeedbackRecord(source_ref="r2", nps_score=10))
    with pytest.raises(ValidationError, match="not_assessed"):
        EnrichedFeedback.model_validate({**scored.model_dump(), "sentiment": worded.sentiment.model_dump()})


def test_writer_rows_of_a_score_only_answer(enricher: Enricher) -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    items = [enricher.enrich(FeedbackRecord(source_ref="a", nps_score=9)),
             enricher.enrich(FeedbackRecord(source_ref="b", text="The courier was rude", nps_score=1))]
    cols = feedback_columns(items, now)
    assert cols["primary_category"][0] is None and cols["primary_category"][1] is not None
    assert cols["text"][0] == "" and cols["sentiment_label"][0] == "not_assessed"
    assert feedback_row(items[0], now)["primary_category"] is None
    cats = category_columns(items)
    assert len(cats["category"]) == len(items[1].categories)  # the score-only item has no category rows


def test_score_only_answers_count_in_the_signal_windows(enricher: Enricher) -> None:
    from processors.signals.windows import Accumulator, Observation

    items = [enricher.enrich(FeedbackRecord(source_ref=f"s{i}", nps_score=s, csat_score=c))
             for i, (s, c) in enumerate([(10, 5), (2, 1), (8, None)])]
    items.append(enricher.enrich(FeedbackRecord(source_ref="w", text="The courier was rude and late", nps_score=0)))
    acc = Accumulator()
    for item in items:
        acc.add(Observation.from_enriched(item, 0))
    window = acc.to_window(("overall", "all"), 0.0, 3600)
    # every answer counts in volume, NPS and CSAT; only the worded one in the sentiment shares
    assert (window.volume, window.nps_responses, window.promoters, window.detractors) == (4, 4, 1, 2)
    assert window.nps == -25.0 and window.csat_responses == 2 and window.csat_mean == 3.0
    assert window.negative + window.neutral + window.positive == 1
