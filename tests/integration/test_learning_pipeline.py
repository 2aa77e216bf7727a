"""Learning through the real pipeline: a survey export with NPS scores is imported through the
broker into the warehouse, an analyst corrects one item, ``feedback train-sentiment
--from-warehouse`` trains and activates a model, and the running processor labels new records with
it (visible in ``sentiment_model``) without a restart. Its own pipeline and SQLite warehouse, so the
activated model never reaches other tests."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for
from tests.integration.warehouse_data import fresh_url

pytestmark = pytest.mark.integration

POSITIVE = ["ace", "mint", "spot on", "sorted in a jiffy", "top notch", "chuffed with it"]
NEGATIVE = ["pants", "naff", "dodgy", "a right faff", "gutted about it", "well dodgy"]
NEUTRAL = ["arrived on tuesday", "as described", "in a box", "ordered via the app", "size nine", "the blue one"]
THINGS = ["the delivery", "the courier", "the checkout", "the parcel", "the app", "the helpdesk", "the refund"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def learning(request: pytest.FixtureRequest, kafka_bootstrap: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    workdir: Path = tmp_path_factory.mktemp("learning")
    with fresh_url(request.param, workdir) as url:
        engine = make_engine(url)
        try:
            yield from _started(Pipeline(kafka_bootstrap, url, engine, workdir))
        finally:
            engine.dispose()


def _started(p: Pipeline) -> Iterator[Pipeline]:
    p.env["FEEDBACK_MODEL_POLL_SECONDS"] = "1"
    p.env["FEEDBACK_TRAIN_MIN_PER_CLASS"] = "80"  # a few hundred records: 110 per class
    p.env["FEEDBACK_EVAL_CACHE"] = str(p.workdir / "no-eval-cache")  # the public sets are not part of this test
    p.start_all()
    try:
        yield p
    finally:
        p.stop()


def feedback(p: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], env=p.env, capture_output=True, text=True,
                          timeout=600)


def survey(path: Path, per_class: int = 110, noise: float = 0.1) -> None:
    """An NPS survey export: the comment's slang decides the score, except for ``noise`` of the rows."""
    rng = random.Random(7)
    bands = {"negative": range(0, 7), "neutral": range(7, 9), "positive": range(9, 11)}
    words = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["response_id", "comment", "nps"])
        for label in ("negative", "neutral", "positive"):
            for i in range(per_class):
                score_label = rng.choice(list(bands)) if rng.random() < noise else label
                comment = f"{rng.choice(THINGS).capitalize()} was {rng.choice(words[label])}, order {i}."
                w.writerow([f"{label}-{i}", comment, rng.choice(list(bands[score_label]))])


def post(p: Pipeline, ref: str, body: str) -> None:
    r = httpx.post(f"{p.url}/v1/events", json={"source_ref": ref, "text": body}, timeout=30)
    assert r.status_code == 202, r.text


def row(p: Pipeline, ref: str) -> dict[str, Any]:
    return wait_for(lambda: p.rows("source_ref = :r", {"r": ref}), 90, what=f"row {ref}")[0]


def test_train_from_imported_scores_and_label_new_records(learning: Pipeline, tmp_path: Path) -> None:
    p = learning
    before = f"before-{uuid.uuid4()}"
    post(p, before, "The courier was ace, sorted in a jiffy.")
    assert row(p, before)["sentiment_model"] == "ensemble"  # the shipped default, by name

    export = tmp_path / "survey.csv"
    survey(export)
    out = feedback(p, "import", str(export), "--text", "comment", "--nps", "nps", "--id", "response_id", "--json")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: p.count("nps_score IS NOT NULL") == 330, 180, what="330 scored rows in the warehouse")

    # bad input: a clear error, exit 2, nothing written
    bad = feedback(p, "train-sentiment", "--data", str(export), "--text-column", "text", "--label-column", "nps")
    assert bad.returncode == 2 and "no column(s) text" in " ".join(bad.stderr.split())
    assert not (p.workdir / "models").exists()

    # an analyst corrects one weakly labelled item; the correction is counted per day
    item = p.rows("nps_score IS NOT NULL ORDER BY source_ref LIMIT 1")[0]
    fixed = feedback(p, "label", str(item["feedback_id"]), "--sentiment", "negative", "--analyst", "ana", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["sentiment"] == 1
    assert p.rows("feedback_id = :f", {"f": item["feedback_id"]})[0]["sentiment_label"] == "negative"
    with p.engine.connect() as conn:
        per_day = conn.execute(text("SELECT kind, corrections, analysts FROM v_label_corrections_daily")).all()
        who = conn.execute(text("SELECT analyst, value FROM feedback_labels")).all()
    assert [tuple(r) for r in per_day] == [("sentiment", 1, 1)] and [tuple(r) for r in who] == [("ana", "negative")]

    trained = feedback(p, "train-sentiment", "--from-warehouse", "--json")
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["n_train"] + report["n_holdout"] == 330 and report["n_holdout"] == 66
    assert report["counts"]["origins"] == {"correction": 1, "weak": 329}
    assert report["macro_f1_new"] > report["macro_f1_current"] and report["activated"] is True, report["decision"]
    version = report["model_version"]
    with p.engine.connect() as conn:
        models = conn.execute(text("SELECT version, kind, active, n_train FROM models")).all()
    assert [(m[0], m[1], bool(m[2]), m[3]) for m in models] == [(version, "sentiment", True, report["n_train"])]
    listed = json.loads(feedback(p, "models", "list", "--json").stdout)
    assert listed["active"]["sentiment"] == version

    # the running processor picks the model up without a restart (it polls the pointer every second)
    def labelled_by_new_model() -> bool:
        probe = f"probe-{uuid.uuid4()}"
        post(p, probe, "The parcel was in a box.")
        return row(p, probe)["sentiment_model"] == version

    wait_for(labelled_by_new_model, 90, interval=1.0, what="a record labelled by the new model")
    cases = {"The helpdesk was top notch, chuffed with it.": "positive",
             "The refund was a right faff, well dodgy.": "negative",
             "The parcel arrived on tuesday, the blue one.": "neutral"}
    refs = {}
    for body in cases:
        refs[body] = f"after-{uuid.uuid4()}"
        post(p, refs[body], body)
    for body, label in cases.items():
        r = row(p, refs[body])
        assert (r["sentiment_model"], r["sentiment_analyzer"], r["sentiment_label"]) == (version, "trained", label)

    # feedback eval runs the active model by default, or the one named
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": body, "label": label}) + "\n" for body, label in cases.items()))
    for extra in ([], ["--model", version]):
        scored = feedback(p, "eval", "--data", str(labelled), "--text-column", "text", "--label-column", "label",
                          "--json", *extra)
        assert scored.returncode == 0, scored.stderr
        assert json.loads(scored.stdout)["n"] == 3 and json.loads(scored.stdout)["macro_f1"] == 1.0
    unknown = feedback(p, "eval", "--data", str(labelled), "--text-column", "text", "--label-column", "label",
                       "--model", "sentiment-19990101T000000Z-00000000")
    assert unknown.returncode == 2 and "no model" in unknown.stderr

    # rollback: the shipped default labels new records again
    back = feedback(p, "models", "rollback", "--kind", "sentiment")
    assert back.returncode == 0 and "shipped default" in back.stdout

    def labelled_by_default() -> bool:
        probe = f"probe-{uuid.uuid4()}"
        post(p, probe, "The parcel was in a box.")
        return row(p, probe)["sentiment_model"] == "ensemble"

    wait_for(labelled_by_default, 90, interval=1.0, what="a record labelled by the default again")

    # and activating the version again by name brings it back
    again = feedback(p, "models", "activate", version)
    assert again.returncode == 0, again.stderr
    wait_for(labelled_by_new_model, 90, interval=1.0, what="a record labelled by the re-activated model")
    with p.engine.connect() as conn:
        assert conn.execute(text("SELECT active FROM models WHERE version = :v"), {"v": version}).scalar_one()
