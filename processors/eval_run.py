"""``make eval``: TextBlob alone, VADER alone and the shipped default on every evaluation set.

Usage: ``python -m processors.eval_run [--cache DIR] [--tune] [--json FILE] [--no-learning]``. It downloads the
packages (:mod:`processors.eval_data`), splits each set into tune/report, optionally refits the
ensemble on the tune splits (``--tune`` rewrites ``processors/sentiment_model.json``), and scores
each analyzer on the report splits with :func:`processors.evaluation.evaluate`, the code
``feedback eval`` and the stream processor run. The baselines are scored twice: with their
documented thresholds (TextBlob: the pipeline's former band 0.1; VADER: +-0.05) and with a
neutral band tuned on the tune split like the ensemble's, so the comparison is not only calibration.

For the four VADER sets it also shows the data's own ceiling: how well *one human rater* agrees
with the mean of the other raters of the same sentence (:func:`human_agreement`), on the same
report split and with the same three classes. A target above that level asks a model to agree with
the raters' consensus better than a person does.

Then (unless ``--no-learning``) :mod:`processors.eval_learning`: the learning curve of a model
trained on weakly labelled rows against the shipped default, and the score next to the text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from processors import eval_data
from processors.enrich import Enricher, normalize_text
from processors.evaluation import evaluate
from processors.sentiment import BANDS_FOR_BASELINES, EnsembleModel
from processors.taxonomy import Taxonomy

TARGET_POINTS = 10.0
MODEL_PATH = Path(__file__).with_name("sentiment_model.json")


def _enricher(analyzer: str, band: float | None = None) -> Enricher:
    return Enricher(Taxonomy.load(), neutral_band=0.1 if band is None else band, analyzer=analyzer,
                    phone_regions=("US", "GB", "DE", "FR"), ensemble_band=band if analyzer == "ensemble" else None)


def _tuned_band(analyzer: str, tune: list[tuple[str, str]]) -> float | None:
    """The baseline's band that maximises macro-F1 on the tune split (three-class sets only)."""
    from processors.evaluation import sentiment_labels

    gold = sentiment_labels([lab for _, lab in tune])
    if "neutral" not in gold:
        return None
    enricher = _enricher(analyzer)
    scores = []
    for text, _ in tune:
        s = enricher.assess(normalize_text(text)).sentiment
        scores.append(None if s["label"] == "not_assessed" else (s["score"] or 0.0))
    from processors.sentiment_tune import _macro_f1

    best = (-1.0, 0.0)
    for band in BANDS_FOR_BASELINES:
        pred = ["not_assessed" if s is None else "positive" if s > band else "negative" if s < -band
                else "neutral" for s in scores]
        f1 = _macro_f1(gold, pred)
        if f1 > best[0] + 1e-9:
            best = (f1, band)
    return best[1]


def human_agreement(rows: list[tuple[str, str]], ratings: dict[str, list[int]]) -> dict[str, Any] | None:
    """Macro-F1 of one rater's rating against the mean of the other ratings of the same text.

    Raters are anonymous and differ between texts, so "rater k" is the k-th rating of each text
    (k = 1..20); each k gives one macro-F1 over the texts of ``rows`` that have ratings, and the
    result is their mean (with the lowest and highest). A single rating is classed like a mean
    (-1 and below negative, 0 neutral, +1 and above positive), the others' mean by
    :func:`eval_data.vader_label`. Deterministic.
    """
    from processors.sentiment_tune import _macro_f1

    items = [ratings[text] for text, _ in rows if text in ratings and len(ratings[text]) >= 2]
    if not items:
        return None
    width = max(len(r) for r in items)
    scores = []
    for k in range(min(width, 20)):
        one, rest = [], []
        for r in items:
            i = k % len(r)
            one.append(eval_data.vader_label(r[i]))
            rest.append(eval_data.vader_label((sum(r) - r[i]) / (len(r) - 1)))
        scores.append(_macro_f1(rest, one))
    return {"macro_f1": round(sum(scores) / len(scores), 4), "lowest": round(min(scores), 4),
            "highest": round(max(scores), 4), "n": len(items), "raters": len(scores)}


def run(cache: Path, retune: bool, log: Any) -> dict[str, Any]:
    started = time.perf_counter()
    sets = eval_data.load_sets(eval_data.fetch(cache))
    ratings = eval_data.load_ratings(cache)
    splits = {name: eval_data.split(rows) for name, rows in sets.items()}
    if retune:
        from processors.sentiment_tune import tune

        log("tuning the ensemble on the tune splits ...")
        model = tune(_enricher("textblob"), {n: s[0] for n, s in splits.items()}, log)
        model.save(MODEL_PATH)
        log(f"wrote {MODEL_PATH}")
        from processors.sentiment import shipped_model

        shipped_model.cache_clear()  # score the model just written, not one loaded before
    model = EnsembleModel.load(MODEL_PATH)
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                               f"{platform.python_version()}", "model": model.meta, "band": model.band, "sets": {}}
    for name, (tune_rows, report_rows) in splits.items():
        row: dict[str, Any] = {"tune_n": len(tune_rows), "report_n": len(report_rows)}
        for analyzer in ("textblob", "vader", "ensemble"):
            rep = evaluate(report_rows, "sentiment", _enricher(analyzer))
            row[analyzer] = {"macro_f1": rep.macro_f1, "accuracy": rep.accuracy, "binary": rep.binary,
                             "not_assessed": sum(r.get("not_assessed", 0) for r in rep.confusion.values())}
        for analyzer in ("textblob", "vader"):
            band = _tuned_band(analyzer, tune_rows)
            if band is not None:
                rep = evaluate(report_rows, "sentiment", _enricher(analyzer, band))
                row[f"{analyzer}_tuned"] = {"macro_f1": rep.macro_f1, "accuracy": rep.accuracy, "band": band}
        best = max(row["textblob"]["macro_f1"], row["vader"]["macro_f1"])
        row["margin_points"] = round(100 * (row["ensemble"]["macro_f1"] - best), 1)
        row["target_met"] = row["margin_points"] >= TARGET_POINTS
        human = human_agreement(report_rows, ratings[name]) if name in ratings else None
        if human is not None:
            human["target_macro_f1"] = round(best + TARGET_POINTS / 100, 4)
            human["target_above_human"] = human["target_macro_f1"] > human["macro_f1"]
            row["one_human_rater"] = human
        results["sets"][name] = row
        log(f"{name}: done")
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def render(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}; ensemble band {results['band']}",
             f"{'set':<14}{'classes':>8}{'report n':>9}{'TextBlob':>10}{'VADER':>8}{'ensemble':>10}"
             f"{'margin':>8}{'target':>8}{'TB tuned':>10}{'VADER tuned':>12}{'1 rater':>9}"]
    for name, r in results["sets"].items():
        classes = "2" if r["ensemble"]["binary"] else "3"
        tb_t = r.get("textblob_tuned", {}).get("macro_f1")
        v_t = r.get("vader_tuned", {}).get("macro_f1")
        human = r.get("one_human_rater", {}).get("macro_f1")
        lines.append(
            f"{name:<14}{classes:>8}{r['report_n']:>9}{r['textblob']['macro_f1']:>10.3f}{r['vader']['macro_f1']:>8.3f}"
            f"{r['ensemble']['macro_f1']:>10.3f}{r['margin_points']:>+8.1f}{'met' if r['target_met'] else 'MISSED':>8}"
            f"{(f'{tb_t:.3f}' if tb_t is not None else '-'):>10}{(f'{v_t:.3f}' if v_t is not None else '-'):>12}"
            f"{(f'{human:.3f}' if human is not None else '-'):>9}")
    lines.append("macro-F1 on the report split; margin = ensemble minus the better baseline, in points; "
                 f"target: >= {TARGET_POINTS:.0f}; 1 rater = one human rater against the others' mean")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "FEEDBACK_EVAL_CACHE", Path(tempfile.gettempdir()) / "feedback-eval-data")))
    parser.add_argument("--tune", action="store_true", help="refit the ensemble on the tune splits first")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--no-learning", action="store_true",
                        help="skip the learning curve and the score-next-to-text measurement")
    args = parser.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    results = run(args.cache, args.tune, log)
    print(render(results))
    if not args.no_learning:
        from processors import eval_learning

        results["learning"] = eval_learning.run(args.cache, log)
        print(eval_learning.render(results["learning"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
