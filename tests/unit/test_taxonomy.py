"""The YAML taxonomy (multi-label, phrases, regexes, exclusions, confidence) and the category model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.schema import FeedbackRecord
from processors.categories_model import CategoryModel, parse_labels
from processors.enrich import Enricher
from processors.learning.categories import train, train_file
from processors.taxonomy import FALLBACK, Taxonomy


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


def names(taxonomy: Taxonomy, text: str) -> list[str]:
    return [t.name for t in taxonomy.tag(text)]


def test_multi_label_and_fallback(taxonomy: Taxonomy) -> None:
    assert set(names(taxonomy, "I was charged twice and the parcel never arrived")) == {"billing", "delivery"}
    assert names(taxonomy, "Hello there") == [FALLBACK]
    assert taxonomy.tag("Hello there")[0].confidence == 1.0


def test_phrases_regexes_and_punctuation_between_words(taxonomy: Taxonomy) -> None:
    assert "customer_support" in names(taxonomy, "I was put ON   HOLD for an hour")
    assert "delivery" in names(taxonomy, "It arrived broken")  # regex \barriv(e|ed|al)\b
    assert "account_login" in names(taxonomy, "I cannot log-in since Monday")
    assert "usability" not in names(taxonomy, "the uix team")  # whole words only


def test_confidence_grows_with_distinct_terms(taxonomy: Taxonomy) -> None:
    one = {t.name: t.confidence for t in taxonomy.tag("Where is my invoice?")}
    three = {t.name: t.confidence for t in taxonomy.tag("The invoice shows a refund, not the payment.")}
    assert one["billing"] == 0.75 and three["billing"] == pytest.approx(0.95)


def test_exclusions_apply_to_their_sentence(taxonomy: Taxonomy) -> None:
    assert "praise" not in names(taxonomy, "The food was not great")
    enricher = Enricher(taxonomy, analyzer="textblob", phone_regions=("US",))
    out = enricher.enrich(FeedbackRecord(source_ref="t1", text="Not great at first. Now it is great, thanks!"))
    assert "praise" in {c.name for c in out.categories}  # the veto holds for sentence 0 only
    assert [a.category for a in out.aspects if a.sentence == 0] == [FALLBACK]


def test_a_phrase_exclusion_needs_all_its_words(taxonomy: Taxonomy) -> None:
    assert "pricing" in names(taxonomy, "The price tag is wrong")
    assert "pricing" not in names(taxonomy, "The price tag printer jammed")  # exclusion: price tag printer
    assert "pricing" in names(taxonomy, "The printer and the price tag")


@pytest.mark.parametrize("data, message", [
    ({}, "expected a mapping"),
    ({"categories": {"x": {"keywords": []}}}, "no keywords"),
    ({"categories": {"x": {"keywords": ["a"], "confidence": 2}}}, "confidence"),
    ({"categories": {"x": {"regexes": ["("]}}}, "x"),
    ({"categories": {"other": {"keywords": ["a"]}}}, "reserved"),
    ({"categories": {"x" * 101: {"keywords": ["a"]}}}, "1 to 100"),
])
def test_invalid_taxonomies(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Taxonomy.from_mapping(data)


def test_custom_taxonomy_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("categories:\n  coffee:\n    keywords: [espresso, latte]\n    confidence: 0.9\n")
    assert [(t.name, t.confidence) for t in Taxonomy.load(path).tag("A cold latte")] == [("coffee", 0.9)]
    with pytest.raises(ConfigError, match="cannot read"):
        Taxonomy.load(tmp_path / "missing.yaml")


TRAINING = [
    ("My invoice is wrong", "billing"), ("I was billed twice this month", "billing"),
    ("Please refund the duplicate payment", "billing"), ("The charge on my statement is too high", "billing"),
    ("The courier left the parcel at the wrong door", "delivery"), ("My package is still in transit", "delivery"),
    ("Shipping took three weeks", "delivery"), ("The driver never showed up with my order", "delivery"),
    ("Wrong parcel and a wrong invoice", "billing; delivery"),
]


def test_category_model_train_predict_and_fallback(tmp_path: Path) -> None:
    model = train([t for t, _ in TRAINING], [parse_labels(lab) for _, lab in TRAINING], threshold=0.5)
    assert model.classes == ["billing", "delivery"]
    path = tmp_path / "model.joblib"
    model.save(path)
    loaded = CategoryModel.load(path)
    assert [t.name for t in loaded.predict(["They billed my card twice for one order"])[0]][:1] == ["billing"]
    enricher = Enricher(Taxonomy.load(), analyzer="textblob", category_model=path, phone_regions=("US",))
    out = enricher.enrich(FeedbackRecord(source_ref="t2", text="The courier lost my parcel. Also the app crashes."))
    assert "delivery" in {c.name for c in out.categories}
    assert "delivery" in {a.category for a in out.aspects if a.sentence == 0}
    # the model knows no "performance" category: the taxonomy still tags it
    assert "performance_reliability" in {a.category for a in out.aspects if a.sentence == 1}


def test_train_categories_file_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "labelled.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "category"])
        w.writerows(TRAINING)
    model = train_file(data, tmp_path / "m.joblib")
    assert model.meta["examples"] == len(TRAINING) and model.meta["per_class"]["billing"] == 5
    with pytest.raises(ConfigError, match="two categories"):
        train(["a", "b"], [["x"], ["x"]])
    (tmp_path / "junk.joblib").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="FEEDBACK_CATEGORY_MODEL"):
        CategoryModel.load(tmp_path / "junk.joblib")
    assert parse_labels(" Billing | delivery;billing ") == ["billing", "delivery"]
