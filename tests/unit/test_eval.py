"""``feedback eval``: label spellings, metrics with known numbers, file formats, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from processors.eval_data import load_ratings, split, vader_label
from processors.eval_run import human_agreement
from processors.evaluation import binary_decision, read_rows, render, score_predictions, sentiment_labels

SMALL = [
    ("I love this app, checkout is quick and easy.", "positive"),
    ("The parcel arrived two weeks late and nobody answered my emails.", "negative"),
    ("The package arrived on Tuesday.", "neutral"),
    ("I was charged twice for one order.", "negative"),
    ("Das Paket kam nie an und niemand hat geantwortet.", "negative"),  # not assessed: counts as a miss
]


def test_metrics_with_known_numbers() -> None:
    r = score_predictions(["negative", "negative", "positive", "neutral"],
                          ["negative", "positive", "positive", "neutral"])
    assert r.n == 4 and r.accuracy == 0.75
    assert r.per_class["negative"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert r.per_class["positive"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert r.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-4)
    assert r.confusion["negative"] == {"negative": 1, "neutral": 0, "positive": 1}
    assert set(r.as_dict()) == {"n", "accuracy", "macro_f1", "per_class", "confusion"}
    lines: list[str] = []
    render(r, lines.append)
    assert lines[0] == "n=4  accuracy=0.7500  macro_f1=0.7778" and any("confusion" in line for line in lines)


def test_label_spellings() -> None:
    assert sentiment_labels(["-1", "0", "1", "neg", "NEU", "Positive", "1.0"]) == [
        "negative", "neutral", "positive", "negative", "neutral", "positive", "positive"]
    assert sentiment_labels(["0", "1", "1"]) == ["negative", "positive", "positive"]  # 0/1 only: binary
    with pytest.raises(ConfigError, match="unknown sentiment label"):
        sentiment_labels(["great"])


def test_binary_decision() -> None:
    assert binary_decision("neutral", 0.0) == "positive" and binary_decision("neutral", -0.01) == "negative"
    assert binary_decision("not_assessed", None) == "not_assessed"


def test_read_rows_formats(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("t\tl\nnice\t1\n\t0\n")
    assert read_rows(tmp_path / "a.tsv", None, "t", "l") == [("nice", "1")]  # empty text skipped
    (tmp_path / "a.jsonl").write_text('{"t": "bad", "l": -1}\n\n{"t": "ok", "l": 0}\n')
    assert read_rows(tmp_path / "a.jsonl", None, "t", "l") == [("bad", "-1"), ("ok", "0")]
    with pytest.raises(ConfigError, match="no column"):
        read_rows(tmp_path / "a.tsv", "tsv", "text", "l")
    with pytest.raises(ConfigError, match="--format"):
        read_rows(tmp_path / "a.weird", None, "t", "l")


def test_eval_data_labels_and_split() -> None:
    assert [vader_label(m) for m in (-0.5, -0.49, 0.0, 0.49, 0.5)] == [
        "negative", "neutral", "neutral", "neutral", "positive"]
    rows = [(f"text {i}", "neutral") for i in range(400)]
    tune, report = split(rows)
    assert len(tune) + len(report) == 400 and 150 < len(tune) < 250
    assert split(rows) == (tune, report) and not set(tune) & set(report)


def test_ratings_behind_the_label_are_read_and_others_left_out(tmp_path: Path) -> None:
    for stem in ("tweets", "amazonReviewSnippets", "movieReviewSnippets", "nytEditorialSnippets"):
        (tmp_path / f"{stem}_GroundTruth.txt").write_text("1\t1.0\tGood.\n2\t-1.333333333\tBad.\n3\t2.0\tOther.\n")
        # item 3's ratings average 1.5, not the ground truth's 2.0: they are not the ones behind its label
        (tmp_path / f"{stem}_anonDataRatings.txt").write_text(
            "1\t1.0\t0.0\t[1, 1, 1]\n2\t-1.333333333\t0.9\t[-2, -2, 0]\n3\t1.5\t0.5\t[1, 2]\n")
    ratings = load_ratings(tmp_path)
    assert ratings["vader-nyt"] == {"Good.": [1, 1, 1], "Bad.": [-2, -2, 0]}


def test_one_rater_agreement_with_known_numbers() -> None:
    rows = [("Good.", "positive"), ("Bad.", "negative"), ("Unrated.", "neutral")]
    ratings = {"Good.": [1, 1, 1], "Bad.": [-2, -2, 0]}
    # raters 1 and 2 agree with the others everywhere (macro-F1 1.0); rater 3 calls "Bad." neutral
    # while the others' mean is -2: negative F1 0, positive F1 1, macro 0.5
    got = human_agreement(rows, ratings)
    assert got == {"macro_f1": pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4), "lowest": 0.5, "highest": 1.0,
                   "n": 2, "raters": 3}
    assert human_agreement([("Unrated.", "neutral")], ratings) is None


def feedback(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "FEEDBACK_LOG_FORMAT": "console", "HOME": "/tmp"})


def test_cli_sentiment_on_a_small_file(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in SMALL))
    out = feedback("eval", "--data", str(data), "--text-column", "text", "--label-column", "label", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n"] == 5 and report["accuracy"] == 0.8
    assert report["macro_f1"] == pytest.approx((0.8 + 1 + 1) / 3, abs=1e-4)
    assert report["per_class"]["negative"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["confusion"]["negative"]["not_assessed"] == 1


def test_cli_binary_jsonl_and_category(tmp_path: Path) -> None:
    binary = tmp_path / "b.jsonl"
    binary.write_text('{"s": "Absolutely wonderful service", "y": 1}\n{"s": "Worst purchase ever, broken", "y": 0}\n')
    out = feedback("eval", "--data", str(binary), "--format", "jsonl", "--text-column", "s", "--label-column", "y",
                   "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["accuracy"] == 1.0 and set(report["per_class"]) == {"negative", "positive"}
    cats = tmp_path / "c.tsv"
    cats.write_text("text\tcat\nI was charged twice for my order\tbilling\nThe parcel never arrived\tdelivery\n")
    out = feedback("eval", "--data", str(cats), "--text-column", "text", "--label-column", "cat",
                   "--task", "category", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["accuracy"] == 1.0


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("a,b\nfine,positive\n")
    out = feedback("eval", "--data", str(data), "--text-column", "text", "--label-column", "b")
    assert out.returncode == 2 and "no column" in " ".join(out.stderr.split())  # Rich may wrap the line
