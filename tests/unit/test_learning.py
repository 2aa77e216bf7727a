"""Learning from the organisation's own feedback: weak labels, the linear model, the store and its
hot pick-up, the holdout gate, corrections merged into training data, the score as a signal."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import structlog
import structlog.testing

from pipeline.config import LearningSettings
from pipeline.errors import ConfigError
from pipeline.schema import FeedbackRecord
from processors import linear_text as linear
from processors.learning.train import train_sentiment
from processors.learning.weak import Row, check_classes, merge, read_file, weak_label
from processors.model_store import ActiveModel, ModelStore
from processors.sentiment_trained import CLASSES, TrainedAnalyzer, combine, load_sentiment_model, score_class

# Shop slang the shipped lexicons do not read ("ace", "pants", "naff"): what a trained model must learn.
_WORDS = {"positive": ["ace", "mint", "spot on", "sorted in a jiffy", "top notch", "chuffed with it"],
          "negative": ["pants", "naff", "dodgy", "a right faff", "gutted about it", "well dodgy"],
          "neutral": ["arrived on tuesday", "as described", "in a box", "ordered via the app", "size nine",
                      "blue one"]}
_THINGS = ["the delivery", "the courier", "the checkout", "the parcel", "the app", "the helpdesk", "the refund",
           "the kettle", "the jumper", "the order"]


def shop_rows(per_class: int, seed: int = 1) -> list[Row]:
    rng = random.Random(seed)
    out = []
    for label in CLASSES:
        for i in range(per_class):
            thing = rng.choice(_THINGS)
            text = f"{thing.capitalize()} was {rng.choice(_WORDS[label])}, {rng.choice(_THINGS)} {i % 7} times."
            out.append(Row(text, label, "weak", f"item-{label}-{i}"))
    return out


@pytest.mark.parametrize("scale, value, label", [
    ("nps", 0, "negative"), ("nps", 6, "negative"), ("nps", 7, "neutral"), ("nps", 8, "neutral"),
    ("nps", 9, "positive"), ("nps", 10, "positive"), ("csat", 1, "negative"), ("csat", 2, "negative"),
    ("csat", 3, "neutral"), ("csat", 4, "positive"), ("stars", 5, "positive"), ("stars", "3", "neutral"),
    ("nps", 11, None), ("csat", 0, None), ("stars", 2.5, None), ("nps", "x", None),
])
def test_weak_labels_follow_the_documented_bands(scale: str, value: object, label: str | None) -> None:
    assert weak_label(value, scale) == label  # type: ignore[arg-type]


def test_corrections_override_weak_labels() -> None:
    weak = [Row("late again", "neutral", "weak", "a"), Row("fine", "positive", "weak", "b")]
    fixed = [Row("late again", "positive", "correction", "a"), Row("late again", "negative", "correction", "a"),
             Row("never scored", "neutral", "correction", "c")]
    merged = merge(weak, fixed)
    assert [(r.item, r.label, r.origin) for r in merged] == [
        ("a", "negative", "correction"), ("b", "positive", "weak"), ("c", "neutral", "correction")]


def test_bad_training_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("comment,nps\nslow refund,3\n")
    with pytest.raises(ConfigError, match="no column"):
        read_file(f, None, "text", score_column="nps", scale="nps")
    with pytest.raises(ConfigError, match="either --label-column or --score-column"):
        read_file(f, None, "comment")
    f.write_text("comment,nps\nslow refund,13\n")
    with pytest.raises(ConfigError, match="row 1: score '13'"):
        read_file(f, None, "comment", score_column="nps", scale="nps")
    f.write_text("comment,mood\nslow refund,furious\n")
    with pytest.raises(ConfigError, match="unknown sentiment label 'furious'"):
        read_file(f, None, "comment", label_column="mood")
    with pytest.raises(ConfigError, match="at least two sentiment classes"):
        check_classes(["negative"] * 500, 200)
    with pytest.raises(ConfigError, match=r"too few rows per class.*neutral=10"):
        check_classes(["negative"] * 300 + ["neutral"] * 10, 200)


def test_weak_labels_from_a_score_column(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"c": f"text {i}", "s": i}) for i in range(11)) + "\n")
    rows = read_file(f, None, "c", score_column="s", scale="nps")
    assert [r.label for r in rows] == ["negative"] * 7 + ["neutral"] * 2 + ["positive"] * 2
    assert {r.origin for r in rows} == {"weak"}


def test_scoring_equals_scikit_learn_on_the_same_features() -> None:
    from sklearn.linear_model import SGDClassifier

    rows = shop_rows(60)
    texts, labels = [r.text for r in rows], [r.label for r in rows]
    model = linear.fit(texts, labels)
    x, vec = linear.design(texts)
    clf = SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=20, tol=None, class_weight="balanced",
                        random_state=0).fit(x, labels)
    unseen = ["The courier was ace!", "Refund was well dodgy and naff", "Das Paket war pünktlich", ""]
    expected = clf.predict_proba(linear.design(unseen, vec)[0])
    for text, row in zip(unseen, expected, strict=True):
        assert model.probabilities(text) == pytest.approx(list(row), abs=1e-9)


def test_a_text_and_its_sentences_in_one_pass_equal_scoring_each_alone() -> None:
    """The trained analyzer scores a text and its sentences in one pass over the words (the text's sums
    are its sentences' plus the pairs across boundaries): the same probabilities as one call each."""
    from processors.sentences import split_sentences

    rows = shop_rows(60)
    model = linear.fit([r.text for r in rows], [r.label for r in rows])
    texts = ["The app was ace. The refund was naff!", "Great courier :) but the box was crushed. Why?",
             "Das Paket war pünktlich. Sehr gut.", "ok", "One. . Two"]
    for text in texts:
        sentences = split_sentences(text) or [text]
        whole, per = model.probabilities_with_parts(text, sentences)
        assert whole == pytest.approx(model.probabilities(text), abs=1e-12)
        assert per == [pytest.approx(model.probabilities(s), abs=1e-12) for s in sentences]
    # parts whose words are not the text's: scored one by one, still right
    whole, per = model.probabilities_with_parts("the app was ace", ["refund naff"])
    assert whole == model.probabilities("the app was ace") and per == [model.probabilities("refund naff")]


def test_saved_model_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    rows = shop_rows(40)
    model = linear.fit([r.text for r in rows], [r.label for r in rows])
    path = tmp_path / "m.joblib"
    sha = model.save(path)
    again = load_sentiment_model(path, sha)
    assert again.probabilities("the app was mint") == pytest.approx(model.probabilities("the app was mint"))
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ConfigError, match="differs from its card"):
        load_sentiment_model(path, sha)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_sentiment_model(path)
    (tmp_path / "x.joblib").write_text("not a model")
    with pytest.raises(ConfigError):
        load_sentiment_model(tmp_path / "x.joblib")


def _settings(tmp_path: Path, **kw: object) -> LearningSettings:
    return LearningSettings(data_dir=tmp_path, train_min_per_class=30, **kw)  # type: ignore[arg-type]


def test_gate_activates_only_a_better_model_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rows = shop_rows(80)
    dry = train_sentiment(rows, settings, dry_run=True)
    assert dry.model_version is None and not dry.activated and not settings.models_path.exists()
    report = train_sentiment(rows, settings)
    assert report.n_train + report.n_holdout == 240 and report.n_holdout == 48
    assert report.current_model == "ensemble"
    assert report.macro_f1_new > report.macro_f1_current and report.activated, report.decision
    store = ModelStore(settings.models_path)
    assert store.active("sentiment")["version"] == report.model_version  # type: ignore[index]
    card = store.card(report.model_version)  # type: ignore[arg-type]
    assert card["n_train"] == report.n_train and card["counts"]["per_class"] == {c: 80 for c in CLASSES}
    # the same data again: the new model is not better than the active one it replaces -> kept
    second = train_sentiment(rows, settings)
    assert second.current_model == report.model_version
    assert not second.activated and "kept the current model" in second.decision
    assert store.active("sentiment")["version"] == report.model_version  # type: ignore[index]
    forced = train_sentiment(rows, settings, force=True)
    assert forced.activated and store.active("sentiment")["version"] == forced.model_version  # type: ignore[index]
    assert store.rollback("sentiment")["version"] == report.model_version  # type: ignore[index]
    assert store.rollback("sentiment") is None and store.active("sentiment") is None


def test_processor_picks_up_a_new_model_and_refuses_a_corrupt_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = train_sentiment(shop_rows(80), settings, force=True)
    now = [0.0]
    store = ModelStore(settings.models_path)
    active = ActiveModel(store, "sentiment", lambda p, sha: load_sentiment_model(p, sha), poll_seconds=5,
                         clock=lambda: now[0])
    assert active.current is not None and active.current[0] == first.model_version
    second = train_sentiment(shop_rows(80, seed=2), settings, force=True)
    active.maybe_refresh()
    assert active.current[0] == first.model_version  # not yet: polled every 5 s
    now[0] = 6.0
    active.maybe_refresh()
    assert active.current[0] == second.model_version
    # a third version whose file is damaged after it was activated: refused, the second stays
    third = train_sentiment(shop_rows(80, seed=3), settings, force=True)
    Path(third.file).write_bytes(b"\0" * 100)  # type: ignore[arg-type]
    now[0] = 12.0
    with structlog.testing.capture_logs() as logs:
        active.maybe_refresh()
    assert active.current[0] == second.model_version
    [refused] = [e for e in logs if e["log_level"] == "error"]
    assert refused["event"].startswith("refused the newly activated model")
    assert refused["in_use"] == second.model_version
    assert "differs from its card" in refused["error"]


def test_a_trained_model_scores_the_languages_it_was_trained_on(tmp_path: Path) -> None:
    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    rng = random.Random(3)
    german = {"positive": ["war super", "hat prima geklappt", "war schnell und freundlich"],
              "negative": ["war eine Katastrophe", "kam kaputt an", "war unverschämt langsam"],
              "neutral": ["kam am Dienstag", "war im Karton", "wurde per App bestellt"]}
    things = ["Die Lieferung", "Der Kundendienst", "Das Paket", "Die Rückerstattung", "Die Bestellung"]
    rows = shop_rows(60) + [Row(f"{rng.choice(things)} {rng.choice(german[lab])}, Bestellung {i}.", lab, "weak")
                            for lab in CLASSES for i in range(60)]
    settings = _settings(tmp_path)
    report = train_sentiment(rows, settings, force=True)
    enricher = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=("DE",), model_dir=settings.models_path)
    text = "Das Paket kam kaputt an und der Kundendienst war unverschämt langsam."
    assessed = enricher.assess(text)
    assert assessed.language.language == "de" and assessed.sentiment["label"] == "negative"
    assert assessed.sentiment["model"] == report.model_version
    shipped = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=("DE",))
    assert shipped.assess(text).sentiment["label"] == "not_assessed"  # the default scores English only


def test_enricher_records_the_model_version(tmp_path: Path) -> None:
    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    settings = _settings(tmp_path)
    enricher = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=("GB",), model_dir=settings.models_path,
                        model_poll_seconds=0.001)
    record = FeedbackRecord(source="event", source_ref="r1", text="The courier was ace, sorted in a jiffy.")
    assert enricher.enrich(record).sentiment.model == "ensemble"
    report = train_sentiment(shop_rows(80), settings, force=True)
    import time

    time.sleep(0.01)
    out = enricher.enrich(record)
    assert out.sentiment.model == report.model_version and out.sentiment.analyzer == "trained"
    assert out.sentiment.label == "positive"


def test_score_next_to_the_text() -> None:
    text_only = {"polarity": 0.0, "subjectivity": 0.1, "label": "neutral", "analyzer": "ensemble", "score": 0.02,
                 "confidence": 0.5, "model": "ensemble"}
    probs = (0.24, 0.5, 0.26)
    record = FeedbackRecord(source="event", source_ref="r2", text="It arrived.", nps_score=2)
    assert score_class(record) == ("nps", "negative")
    both = combine(text_only, probs, "nps", "negative", 1.0)
    assert both["label"] == "negative" and both["analyzer"] == "ensemble+nps" and both["score"] < 0
    assert combine(text_only, probs, "nps", "negative", 0.0) is text_only
    confident = combine(text_only, (0.02, 0.03, 0.95), "nps", "negative", 1.0)
    assert confident["label"] == "positive"  # a clearly positive text keeps its label


def test_trained_analyzer_scores_and_sentences() -> None:
    rows = shop_rows(60)
    analyzer = TrainedAnalyzer(linear.fit([r.text for r in rows], [r.label for r in rows]), "v1")
    whole, per = analyzer.scores("The app was ace. The refund was naff.", ["The app was ace.", "The refund was naff."])
    assert [p["label"] for p in per] == ["positive", "negative"]
    for s in (whole, *per):
        assert -1 <= s["score"] <= 1 and 0 <= s["confidence"] <= 1 and s["model"] == "v1"


def test_round4_is_round_bit_for_bit() -> None:
    import math
    import struct

    from processors.linear_text import round4

    rng = random.Random(3)
    values = [0.0, -0.0, 1.0, -1.0, 1e-5, -1e-5, 0.00005, -0.00005, 0.99995, -0.99995, 123.45675, 1e9,
              float("inf"), float("-inf")]
    for k in range(-10_000, 10_001, 7):  # the ties and their neighbours
        for v in ((k + 0.5) / 1e4, k / 1e4):
            values += [v, math.nextafter(v, 2.0), math.nextafter(v, -2.0)]
    values += [rng.uniform(-1.0, 1.0) for _ in range(20_000)]
    for v in values:
        assert struct.pack("<d", round4(v)) == struct.pack("<d", round(v, 4)), v
    assert math.isnan(round4(float("nan")))
