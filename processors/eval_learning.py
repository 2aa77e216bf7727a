"""``make eval``, learning part: what a model trained on weakly labelled in-domain rows gains over
the shipped default, and what a record's own score adds to its text.

Data: the four VADER sets (:mod:`processors.eval_data`), whose archive keeps every rater's rating.
A *weakly labelled row* is one text with ONE rater's rating (-4..+4, classed like a mean: <= -1
negative, 0 neutral, >= 1 positive), the way a customer's single score sits next to a comment: noisy.

* **Learning curve.** For n in 500, 2,000 and 10,000: n (text, one rating) pairs drawn without
  replacement (seed 17) from the texts of the *tune* split (a text may appear with several raters'
  ratings), a model fitted on them (:func:`processors.linear_text.fit`, the code of
  ``feedback train-sentiment``), scored on the *report* split's texts against the raters' consensus
  label; the shipped default is scored on the same texts in the same run. Train and test texts are
  disjoint (the hash split). The shipped default was itself fitted on the tune splits of every set,
  this domain included; so the curve also shows the default refitted *without* this set
  (:func:`processors.sentiment_tune.tune` on the other six sets' tune splits, same procedure): what
  the default is for an organisation whose domain it never saw.
* **Score next to text.** On the report split, each text's first rating plays the customer's score
  and the mean of the other ratings is the truth: macro-F1 of the text alone (the default), the score
  alone, and both (:func:`processors.sentiment_trained.combine`) at several weights.

Usage: ``python -m processors.eval_learning [--cache DIR] [--json FILE]`` (``make eval`` runs it too).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from processors import eval_data

SIZES = (500, 2000, 10_000)
WEIGHTS = (0.5, 1.0, 2.0)
SEED = 17


def one_rating_label(rating: float) -> str:
    return eval_data.vader_label(rating)


def weak_pairs(tune: list[tuple[str, str]], ratings: dict[str, list[int]], n: int) -> list[tuple[str, str]]:
    """``n`` (text, one rater's label) pairs from the tune texts (fewer when there are fewer)."""
    pairs = [(text, r) for text, _ in tune for r in ratings.get(text, [])]
    rng = random.Random(SEED)
    rng.shuffle(pairs)
    return [(t, one_rating_label(r)) for t, r in pairs[:n]]


def _enricher(analyzer: Any) -> Any:
    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    return Enricher(Taxonomy.load(), analyzer=analyzer, phone_regions=("US", "GB", "DE", "FR"))


def learning_curve(name: str, tune: list[tuple[str, str]], report: list[tuple[str, str]],
                   ratings: dict[str, list[int]], default_f1: float, log: Any,
                   unseen_f1: float | None = None) -> dict[str, Any]:
    from processors.evaluation import evaluate
    from processors.linear_text import fit
    from processors.sentiment_trained import TrainedAnalyzer

    out: dict[str, Any] = {"report_n": len(report), "default_macro_f1": default_f1,
                           "default_without_this_set_macro_f1": unseen_f1, "points": []}
    for n in SIZES:
        rows = weak_pairs(tune, ratings, n)
        if len(rows) < n:
            out["points"].append({"n": n, "skipped": f"only {len(rows)} weak rows in the tune split"})
            continue
        started = time.process_time()
        model = fit([t for t, _ in rows], [lab for _, lab in rows])
        seconds = time.process_time() - started
        agree = sum(lab == eval_data.vader_label(_mean(ratings[t])) for t, lab in rows) / len(rows)
        rep = evaluate(report, "sentiment", _enricher(TrainedAnalyzer(model, f"curve-{n}")))
        out["points"].append({"n": n, "distinct_texts": len({t for t, _ in rows}), "macro_f1": rep.macro_f1,
                              "gain_points": round(100 * (rep.macro_f1 - default_f1), 1),
                              "gain_over_unseen_points": None if unseen_f1 is None
                              else round(100 * (rep.macro_f1 - unseen_f1), 1),
                              "weak_label_agreement": round(agree, 3), "fit_cpu_seconds": round(seconds, 2)})
        log(f"{name}: n={n} macro-F1 {rep.macro_f1:.3f} (default {default_f1:.3f})")
    return out


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


def score_and_text(report: list[tuple[str, str]], ratings: dict[str, list[int]], default: Any) -> dict[str, Any]:
    """Macro-F1 against the other raters' consensus: text alone, score alone, and both."""
    from processors.enrich import normalize_text
    from processors.evaluation import score_predictions
    from processors.sentiment_trained import combine

    gold, text_only, score_only = [], [], []
    both: dict[float, list[str]] = {w: [] for w in WEIGHTS}
    for text, _ in report:
        r = ratings.get(text)
        if not r or len(r) < 2:
            continue
        a = default.assess(normalize_text(text))
        if a.probs is None:
            continue  # not assessed (not English): the same for every variant, left out
        score_label = one_rating_label(r[0])
        gold.append(eval_data.vader_label(_mean(r[1:])))
        text_only.append(a.sentiment["label"])
        score_only.append(score_label)
        for w in WEIGHTS:
            both[w].append(combine(a.sentiment, a.probs, "rating", score_label, w)["label"])
    if not gold:
        return {}
    out = {"n": len(gold), "text_only": score_predictions(gold, text_only).macro_f1,
           "score_only": score_predictions(gold, score_only).macro_f1}
    for w in WEIGHTS:
        out[f"both_w{w:g}"] = score_predictions(gold, both[w]).macro_f1
    return out


def default_without(name: str, sets: dict[str, list[tuple[str, str]]], log: Any) -> Any:
    """The default ensemble refitted on the tune splits of every set but ``name``."""
    from processors.sentiment import EnsembleAnalyzer
    from processors.sentiment_tune import tune

    others: dict[str, Sequence[tuple[str, str]]] = {n: eval_data.split(rows)[0] for n, rows in sets.items()
                                                   if n != name}
    model = tune(_enricher("textblob"), others, lambda m: None)
    log(f"{name}: default refitted without it (C={model.meta.get('C')}, band {model.band})")
    return _enricher(EnsembleAnalyzer(model))


def run(cache: Path, log: Any = lambda m: None, unseen: bool = True) -> dict[str, Any]:
    from processors.evaluation import evaluate

    started = time.perf_counter()
    sets = eval_data.load_sets(eval_data.fetch(cache))
    ratings = eval_data.load_ratings(cache)
    default = _enricher("ensemble")
    results: dict[str, Any] = {"curve": {}, "score_and_text": {}}
    for name in eval_data.VADER_SETS:
        tune, report = eval_data.split(sets[name])
        default_f1 = evaluate(report, "sentiment", default).macro_f1
        unseen_f1 = evaluate(report, "sentiment", default_without(name, sets, log)).macro_f1 if unseen else None
        results["curve"][name] = learning_curve(name, tune, report, ratings[name], default_f1, log, unseen_f1)
        results["score_and_text"][name] = score_and_text(report, ratings[name], default)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def render(results: dict[str, Any]) -> str:
    lines = ["learning curve: macro-F1 on the report split after n weakly labelled rows (one rating each)",
             f"{'set':<14}{'report n':>9}{'default':>9}{'unseen':>9}" + "".join(f"{f'n={n:,}':>18}" for n in SIZES)]
    for name, r in results["curve"].items():
        cells = []
        for p in r["points"]:
            cells.append(f"{'-':>18}" if "skipped" in p else f"{p['macro_f1']:.3f} ({p['gain_points']:+.1f})".rjust(18))
        unseen = r.get("default_without_this_set_macro_f1")
        lines.append(f"{name:<14}{r['report_n']:>9}{r['default_macro_f1']:>9.3f}"
                     f"{(f'{unseen:.3f}' if unseen is not None else '-'):>9}" + "".join(cells))
    lines.append("unseen = the default refitted without this set; (+x) = points over the shipped default")
    lines.append("score next to text: macro-F1 against the other raters' consensus")
    keys = ["text_only", "score_only", *[f"both_w{w:g}" for w in WEIGHTS]]
    lines.append(f"{'set':<14}{'n':>7}" + "".join(f"{k:>13}" for k in keys))
    for name, r in results["score_and_text"].items():
        if r:
            lines.append(f"{name:<14}{r['n']:>7}" + "".join(f"{r[k]:>13.3f}" for k in keys))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import os
    import tempfile

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "FEEDBACK_EVAL_CACHE", Path(tempfile.gettempdir()) / "feedback-eval-data")))
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--no-unseen", action="store_true", help="skip refitting the default without each set")
    args = parser.parse_args(argv)
    results = run(args.cache, lambda m: print(m, file=sys.stderr, flush=True), not args.no_unseen)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
